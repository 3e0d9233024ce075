module quantexample

go 1.19

require quant v0.0.0

replace quant => ../../bindings/go
