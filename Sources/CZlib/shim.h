#ifndef RELAY_CZLIB_SHIM_H
#define RELAY_CZLIB_SHIM_H
#include <zlib.h>
/* deflateInit2 is a macro; Swift calls this instead. */
static inline int czlib_deflate_init_raw(z_streamp s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
}
#endif
