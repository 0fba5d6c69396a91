#ifndef RELAY_CLIBDEFLATE_SHIM_H
#define RELAY_CLIBDEFLATE_SHIM_H
#include <libdeflate.h>
#endif
