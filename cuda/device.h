/*
 * device.h — CUDA device discovery for the C side (--device auto|cpu|cuda[:N]).
 * Implemented in cuda/device.cu; callable from C. Never exits: failures come back as a count of
 * zero with the CUDA runtime's message in `why`, so a machine without a GPU just picks the CPU.
 */
#ifndef WV_CUDA_DEVICE_H
#define WV_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cuda_device_info {
    int index;
    char name[256];
    int cc_major, cc_minor;
    size_t total_mem_bytes;
    int n_sm;
};

/* Number of usable CUDA devices (0 when no driver/device; then `why` says why, if non-NULL). */
int cuda_device_count(char *why, size_t why_len);
/* Fill `info` for device `index`; returns 0 on success, -1 with `why` filled otherwise. */
int cuda_device_query(int index, struct cuda_device_info *info, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
