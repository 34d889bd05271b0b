/*
 * weights.h — named tensors loaded from a checkpoint: safetensors natively, official PyTorch
 * `.pth` files (zip + pickle) through a restricted reader that understands only tensors and plain
 * containers and never executes anything (DESIGN.md "Numerics and models").
 *
 * A `struct weights` owns every tensor as contiguous fp32 in C order (fp16/bf16/fp64 sources are
 * converted on load), plus the file's sha256 and, for safetensors, its `__metadata__` JSON text.
 * Names are exactly as stored in the file (no renaming here; vmamba_config.h normalises
 * v0-era names). Read-only after load: safe to share between threads.
 */
#ifndef WV_WEIGHTS_H
#define WV_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define WEIGHTS_MAX_DIMS 8

enum weights_dtype { WDT_F32, WDT_F16, WDT_BF16, WDT_F64, WDT_I64, WDT_I32, WDT_U8, WDT_BOOL };

struct weight_tensor {
    char *name;                       /* NUL-terminated, owned by the weights */
    int ndim;                         /* 0..WEIGHTS_MAX_DIMS */
    int64_t shape[WEIGHTS_MAX_DIMS];  /* C order, shape[ndim-1] fastest */
    int64_t numel;                    /* product of shape (1 for a scalar) */
    enum weights_dtype source_dtype;  /* dtype in the file */
    float *data;                      /* numel fp32 values, owned by the weights */
};

struct weights {
    int n;                            /* number of tensors */
    struct weight_tensor *t;          /* n tensors, in file order */
    char *metadata_json;              /* safetensors __metadata__ as a JSON object text, or NULL */
    char sha256[65];                  /* of the whole file */
    char format[16];                  /* "safetensors" or "pth" */
    int *by_name;                     /* internal: tensor indices sorted by name for
                                         weights_find, or NULL (then a linear search) */
};

/* Load a checkpoint; the format is detected from the content (safetensors header or zip magic).
 * For `.pth`, the tensors are those of ckpt["model"] when present (else ckpt["state_dict"],
 * else the top-level dict itself). Errors (truncated, corrupt, hostile pickle, NaN/Inf values,
 * duplicate names): a status and an error message naming the file part; *out is NULL. */
enum wv_status weights_load(const char *path, struct weights **out);

/* Parse from memory (the fuzz targets use these). `len` bytes at `data`. */
enum wv_status weights_parse_safetensors(const uint8_t *data, size_t len, struct weights **out);
enum wv_status weights_parse_pth(const uint8_t *data, size_t len, struct weights **out);

void weights_free(struct weights *w);

/* Short dtype name as safetensors spells it ("F32", "BF16", ...). */
const char *weights_dtype_name(enum weights_dtype d);

/* Total number of elements over all tensors. */
long long weights_numel_total(const struct weights *w);

/* Tensor by exact name, NULL if absent (no error recorded). */
const struct weight_tensor *weights_find(const struct weights *w, const char *name);

/* Write tensors as fp32 safetensors, atomically (temp name + rename). `metadata_json` is a JSON
 * object whose string values go into __metadata__ (may be NULL). Tensors are written sorted by
 * name, with 8-byte-aligned header padding, as the reference implementation does. */
enum wv_status weights_save_safetensors(const char *path, const struct weight_tensor *t, int n,
                                        const char *metadata_json);

#endif
