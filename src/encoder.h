/*
 * encoder.h — the backbone as the analyze pipeline sees it (DESIGN.md "Data flow"): one region
 * in, its stage-3 feature map (stride 32) out, on the CPU (src/vmamba.h) or on a GPU
 * (cuda/vmamba_cuda.h, only in a WV_HAVE_CUDA build). A thin device-neutral wrapper: the
 * numerics are those of vmamba_forward / vmamba_cuda_forward, unchanged.
 *
 * Thread safety: one encoder is used by one thread at a time (the pipeline's consumer thread).
 */
#ifndef WV_ENCODER_H
#define WV_ENCODER_H

#include "backend.h"
#include "device_select.h"
#include "error.h"
#include "vmamba.h"
#include "vmamba_config.h"
#include "weights.h"

struct encoder;

struct encoder_options {
    enum wv_device device; /* WV_DEVICE_CPU or WV_DEVICE_CUDA (resolved, never "auto") */
    int device_index;      /* CUDA ordinal, 0 for the CPU */
    enum wv_dtype dtype;   /* GPU GEMM storage; the CPU always computes fp32 */
    int threads;           /* CPU threads (OpenMP), ≤ 0 = all cores; also the host side of CUDA */
};

/* Build the backbone from the tensors of `w` under `prefix` (e.g. "backbone."). The CPU model
 * points into `w`, which must outlive the encoder. CUDA: the weights are uploaded once.
 * Errors: those of vmamba_load / vmamba_cuda_create / backend_init (WV_EUNSUPPORTED when CUDA
 * is asked for in a build without it). *out NULL on error. */
enum wv_status encoder_create(const struct weights *w, const char *prefix,
                              const struct encoder_options *opt, struct encoder **out);
void encoder_free(struct encoder *e);

/* The backbone's configuration; D of the feature map = config->dims[3]. */
const struct vmamba_config *encoder_config(const struct encoder *e);
int encoder_feature_dim(const struct encoder *e);
/* Size (hs, ws) of the stage-3 map for an H×W input (H/32, W/32 when both are multiples of 32). */
void encoder_feature_size(const struct encoder *e, int H, int W, int *hs, int *ws);
/* The CPU backend handle (threads) the encoder runs with (host side for CUDA). */
const struct backend *encoder_backend(const struct encoder *e);
/* "cpu" or "cuda:0" */
const char *encoder_device_name(const struct encoder *e);

/* One H×W image through the backbone. Input rows come through `read` ((rows, W, 3) fp32,
 * normalised, channels-last: vmamba_read_rows_fn with b = 0). on_stage (may be NULL) sees each
 * stage map; the pipeline uses it as a cancellation point (return WV_EINTR). On the GPU
 * on_stage is not called (each call would cost a device→host copy of the map).
 * features: (hs, ws, D) OUT, channels-last, host memory. */
enum wv_status encoder_forward(struct encoder *e, int H, int W, vmamba_read_rows_fn read,
                               void *read_user, vmamba_stage_fn on_stage, void *stage_user,
                               float *features);

#endif
