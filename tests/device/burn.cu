// burn.cu — a CUDA load for the device check: keeps every SM busy for N seconds, then exits 0.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void spin(unsigned long long cycles, float *out) {
        unsigned long long start = clock64();
        float x = threadIdx.x;
        while (clock64() - start < cycles)
                x = x * 0.999f + 1.0f;
        out[blockIdx.x * blockDim.x + threadIdx.x] = x;
}

int main(int argc, char **argv) {
        int seconds = argc > 1 ? atoi(argv[1]) : 10;
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
                fprintf(stderr, "burn: no CUDA device: %s\n", cudaGetErrorString(cudaGetLastError()));
                return 2;
        }
        int blocks = p.multiProcessorCount * 4, threads = 256;
        float *out;
        cudaMalloc(&out, sizeof(float) * blocks * threads);
        int khz = 0;
        cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0); /* kHz */
        if (khz <= 0)
                khz = 1500000;
        unsigned long long cycles = (unsigned long long)khz * 1000ull / 4; /* ~0.25 s per launch */
        printf("burn: %s, %d SMs, %d s\n", p.name, p.multiProcessorCount, seconds);
        fflush(stdout);
        for (int i = 0; i < seconds * 4; i++) {
                spin<<<blocks, threads>>>(cycles, out);
                if (cudaDeviceSynchronize() != cudaSuccess) {
                        fprintf(stderr, "burn: kernel failed: %s\n", cudaGetErrorString(cudaGetLastError()));
                        return 3;
                }
        }
        cudaFree(out);
        printf("burn: done\n");
        return 0;
}
