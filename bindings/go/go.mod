module quant

go 1.19
