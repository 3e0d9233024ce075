/* The C API that build.zig translates for the Zig binding (Zig 0.16+ replaced @cImport with the
   build system's translate-c step, b.addTranslateC). */
#include <quant.h>
