/* quant.h compiles on its own as strict C99 (built with -Wall -Wextra -Wpedantic -Werror). */
#include "quant.h"
int quant_header_compiles_as_c(void) { return QUANT_OK; }
