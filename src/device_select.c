/* device_select.c — --device / --dtype parsing and "auto" resolution; see device_select.h. */
#include "device_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WV_HAVE_CUDA
#include "cuda/device.h"
#endif

const char *wv_dtype_name(enum wv_dtype dt)
{
    switch (dt) {
    case WV_DTYPE_F32: return "f32";
    case WV_DTYPE_BF16: return "bf16";
    case WV_DTYPE_F16: return "f16";
    }
    return "?";
}

enum wv_status wv_dtype_parse(const char *s, enum wv_dtype *out)
{
    if (!s) return error_set(WV_EINVAL, "--dtype: missing value (f32, bf16 or f16)");
    if (!strcmp(s, "f32") || !strcmp(s, "fp32") || !strcmp(s, "float32")) *out = WV_DTYPE_F32;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = WV_DTYPE_BF16;
    else if (!strcmp(s, "f16") || !strcmp(s, "fp16") || !strcmp(s, "float16")) *out = WV_DTYPE_F16;
    else return error_set(WV_EINVAL, "--dtype %s: expected f32, bf16 or f16", s);
    return WV_OK;
}

#ifdef WV_HAVE_CUDA
/* Fill desc for CUDA device `index`; WV_EUNSUPPORTED when absent. */
static enum wv_status describe_cuda(int index, struct device_choice *out)
{
    char why[256] = "";
    int n = cuda_device_count(why, sizeof why);
    if (n <= 0) return error_set(WV_EUNSUPPORTED, "cuda:%d: no usable CUDA device (%s)", index, why);
    if (index >= n)
        return error_set(WV_EUNSUPPORTED, "cuda:%d: only %d CUDA device%s present", index, n,
                         n == 1 ? "" : "s");
    struct cuda_device_info info;
    if (cuda_device_query(index, &info, why, sizeof why))
        return error_set(WV_EUNSUPPORTED, "cuda:%d: %s", index, why);
    out->device = WV_DEVICE_CUDA;
    out->index = index;
    snprintf(out->desc, sizeof out->desc, "cuda:%d (%s, sm_%d%d, %.1f GiB, %d SMs)", index,
             info.name, info.cc_major, info.cc_minor,
             (double)info.total_mem_bytes / (1024.0 * 1024.0 * 1024.0), info.n_sm);
    return WV_OK;
}
#endif

enum wv_status device_select(const char *spec, struct device_choice *out)
{
    memset(out, 0, sizeof *out);
    out->device = WV_DEVICE_CPU;
    snprintf(out->desc, sizeof out->desc, "cpu");
    if (!spec || !strcmp(spec, "cpu")) return WV_OK;
    if (!strcmp(spec, "auto")) {
        out->was_auto = 1;
#ifdef WV_HAVE_CUDA
        char why[256] = "";
        if (cuda_device_count(why, sizeof why) > 0) {
            if (describe_cuda(0, out) == WV_OK) return WV_OK;
            snprintf(why, sizeof why, "%s", error_msg());
            error_clear();
        }
        snprintf(out->desc, sizeof out->desc, "cpu (no usable CUDA device: %s)", why);
#else
        snprintf(out->desc, sizeof out->desc, "cpu (this build has no CUDA backend)");
#endif
        return WV_OK;
    }
    if (strncmp(spec, "cuda", 4) != 0 || (spec[4] != '\0' && spec[4] != ':'))
        return error_set(WV_EINVAL, "--device %s: expected auto, cpu, cuda or cuda:N", spec);
    int index = 0;
    if (spec[4] == ':') {
        char *end = NULL;
        long v = strtol(spec + 5, &end, 10);
        if (!spec[5] || *end || v < 0 || v > 1024)
            return error_set(WV_EINVAL, "--device %s: expected cuda:N with N a device number",
                             spec);
        index = (int)v;
    }
#ifdef WV_HAVE_CUDA
    return describe_cuda(index, out);
#else
    (void)index;
    return error_set(WV_EUNSUPPORTED,
                     "--device %s: this build has no CUDA backend (rebuild with CUDA, or use "
                     "--device cpu)", spec);
#endif
}
