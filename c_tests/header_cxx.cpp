// quant.h compiles on its own as C++ (built with -Wall -Wextra -Wpedantic -Werror).
#include "quant.h"
int quant_header_compiles_as_cxx() { return QUANT_OK + static_cast<int>(sizeof(quant_status)); }
