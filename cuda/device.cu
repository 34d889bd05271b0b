/* device.cu — CUDA device discovery; see device.h. */
#include "device.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" int cuda_device_count(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why && why_len) snprintf(why, why_len, "%s", cudaGetErrorString(e));
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    if (n == 0 && why && why_len) snprintf(why, why_len, "no CUDA device present");
    return n;
}

extern "C" int cuda_device_query(int index, struct cuda_device_info *info, char *why,
                                 size_t why_len)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) {
        if (why && why_len) snprintf(why, why_len, "device %d: %s", index, cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    memset(info, 0, sizeof *info);
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->total_mem_bytes = p.totalGlobalMem;
    info->n_sm = p.multiProcessorCount;
    return 0;
}
