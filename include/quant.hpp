// quant.hpp: the C++17 layer over quant.h (written in the next commit).
#pragma once
#include "quant.h"
