/*
 * weights_private.h — shared internals of the weights module (weights.c, safetensors.c, pth.c,
 * pickle.c). Not part of the contract (weights.h); nothing outside these files includes it.
 */
#ifndef WV_WEIGHTS_PRIVATE_H
#define WV_WEIGHTS_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "weights.h"

/* Bytes per element of a file dtype. */
size_t wdt_size(enum weights_dtype d);
const char *wdt_name(enum weights_dtype d);

/* Product of shape[0..ndim) into *numel; WV_EFORMAT naming `name` on a negative dimension or
 * int64 overflow (also when numel * 8 bytes would not fit a size_t). */
enum wv_status shape_numel(const char *name, int ndim, const int64_t *shape, int64_t *numel);

/* An empty weights object (format set); NULL + WV_ENOMEM on failure. */
struct weights *weights_new(const char *format);

/* Append a tensor: copies `name`, allocates numel floats (returned through *data, uninitialised).
 * Rejects duplicate names. */
enum wv_status weights_add(struct weights *w, const char *name, int ndim, const int64_t *shape,
                           enum weights_dtype src, float **data);

/* Convert `numel` little-endian elements of dtype `src` at `raw` to fp32. */
void weights_convert(enum weights_dtype src, const uint8_t *raw, int64_t numel, float *out);

/* After all tensors are added: check every value is finite (error names the tensor and the index)
 * and build the name index. */
enum wv_status weights_finish(struct weights *w);

/* ---- restricted unpickler (pickle.c) ------------------------------------------------------- */

enum pk_kind {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL,  /* an allowlisted global, not called yet */
    PK_STORAGE, /* result of BINPERSID: ('storage', type, key, location, numel) */
    PK_TENSOR,  /* result of _rebuild_tensor_v2 / _rebuild_parameter */
    PK_OPAQUE   /* an inert allowlisted object (a yacs CfgNode, a dtype, ...): never inspected */
};

/* Allowlisted globals, the only callables the unpickler knows; calling is emulated in C. */
enum pk_global {
    PKG_REBUILD_TENSOR_V2, PKG_REBUILD_PARAMETER, PKG_REBUILD_PARAMETER_STATE, PKG_ORDERED_DICT,
    PKG_STORAGE,  /* torch.<X>Storage: dtype in .dtype */
    PKG_INERT     /* data-only classes and dtype objects: calling gives PK_OPAQUE */
};

struct pk_obj;
struct pk_tensor;

struct pk_obj {
    enum pk_kind kind;
    union {
        int b;
        int64_t i;
        double f;
        struct { const char *s; size_t len; } str;             /* PK_STR, PK_BYTES (not NUL-safe) */
        struct { struct pk_obj **items; size_t n, cap; } seq;   /* PK_TUPLE, PK_LIST */
        struct { struct pk_obj **kv; size_t n, cap; } dict;     /* 2n entries: key, value */
        struct { enum pk_global g; enum weights_dtype dtype; const char *name; } glob;
        struct { const char *key; enum weights_dtype dtype; int64_t numel; } storage;
        struct pk_tensor *tensor;
    } u;
};

struct pk_tensor {
    struct pk_obj *storage; /* PK_STORAGE */
    int64_t offset;         /* storage_offset, in elements */
    int ndim;
    int64_t shape[WEIGHTS_MAX_DIMS], stride[WEIGHTS_MAX_DIMS]; /* strides in elements */
};

struct pk_machine; /* owns every object; freed with pk_free */

/* Run the unpickler over `data` (the bytes of data.pkl). On success *root is the unpickled
 * top-level object, valid until pk_free(*m). Limits (memory, memo, nesting of marks) are
 * proportional to len. On failure the error names the opcode offset and the cause. */
enum wv_status pk_load(const uint8_t *data, size_t len, struct pk_machine **m,
                       struct pk_obj **root);
void pk_free(struct pk_machine *m);

/* Dict lookup by string key; NULL if absent. */
struct pk_obj *pk_dict_get(const struct pk_obj *d, const char *key);

#endif
