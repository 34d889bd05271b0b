/*
 * encoder.c — device-neutral backbone wrapper (contract in encoder.h): vmamba_forward on the
 * CPU, vmamba_cuda_forward when built with CUDA and asked for. The CPU struct vmamba is always
 * built (it only points into the weights) so stage sizes come from vmamba_stage_sizes either way.
 */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

#ifdef WV_HAVE_CUDA
#include "cuda/vmamba_cuda.h"
#endif

struct encoder {
    struct backend be;
    struct vmamba *cpu;
#ifdef WV_HAVE_CUDA
    struct vmamba_cuda *gpu;
#endif
    char name[32];
};

enum wv_status encoder_create(const struct weights *w, const char *prefix,
                              const struct encoder_options *opt, struct encoder **out)
{
    *out = NULL;
    struct encoder *e = wv_calloc(1, sizeof *e, "encoder");
    if (!e) return WV_ENOMEM;
    enum wv_status st;
    /* the CPU backend always exists: it runs the CPU model, or the host side of the GPU path */
    if ((st = backend_init(&e->be, WV_DEVICE_CPU, opt->threads, 0))) goto fail;
    if ((st = vmamba_load(w, prefix, &e->cpu))) goto fail;
    if (vmamba_in_chans(e->cpu) != 3) {
        st = error_set(WV_EUNSUPPORTED, "backbone takes %d input channels, analyze needs 3 (RGB)",
                       vmamba_in_chans(e->cpu));
        goto fail;
    }
    snprintf(e->name, sizeof e->name, "cpu");
    if (opt->device == WV_DEVICE_CUDA) {
#ifdef WV_HAVE_CUDA
        struct vmamba_cuda_options go = {.device = opt->device_index, .dtype = opt->dtype};
        if ((st = vmamba_cuda_create(w, prefix, &go, &e->gpu))) goto fail;
        snprintf(e->name, sizeof e->name, "cuda:%d", opt->device_index);
#else
        st = error_set(WV_EUNSUPPORTED, "this build has no CUDA backend (rebuild with -DWSI_CUDA=ON)");
        goto fail;
#endif
    }
    *out = e;
    return WV_OK;
fail:
    encoder_free(e);
    return st;
}

void encoder_free(struct encoder *e)
{
    if (!e) return;
#ifdef WV_HAVE_CUDA
    vmamba_cuda_free(e->gpu);
#endif
    vmamba_free(e->cpu);
    backend_destroy(&e->be);
    free(e);
}

const struct vmamba_config *encoder_config(const struct encoder *e)
{
    return vmamba_get_config(e->cpu);
}

int encoder_feature_dim(const struct encoder *e)
{
    return vmamba_get_config(e->cpu)->dims[VMAMBA_STAGES - 1];
}

void encoder_feature_size(const struct encoder *e, int H, int W, int *hs, int *ws)
{
    int h[VMAMBA_STAGES], w[VMAMBA_STAGES];
    vmamba_stage_sizes(e->cpu, H, W, h, w);
    *hs = h[VMAMBA_STAGES - 1];
    *ws = w[VMAMBA_STAGES - 1];
}

const struct backend *encoder_backend(const struct encoder *e)
{
    return &e->be;
}

const char *encoder_device_name(const struct encoder *e)
{
    return e->name;
}

enum wv_status encoder_forward(struct encoder *e, int H, int W, vmamba_read_rows_fn read,
                               void *read_user, vmamba_stage_fn on_stage, void *stage_user,
                               float *features)
{
#ifdef WV_HAVE_CUDA
    if (e->gpu)
        return vmamba_cuda_forward(e->gpu, 1, H, W, read, read_user, NULL, NULL, NULL, features);
#endif
    return vmamba_forward(e->cpu, &e->be, 1, H, W, read, read_user, on_stage, stage_user, NULL,
                          features);
}
