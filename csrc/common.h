// Error handling and device selection shared by every ganfast._C source.
//
// Every CUDA runtime call goes through CUDA_CHECK and every launch is followed
// by check_launch, so a failure surfaces as a Python RuntimeError that names
// the call, instead of a silent wrong answer or a later, unrelated error.
// This header is plain C++ (no CUDA syntax) so that bindings.cpp can use it.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace ganfast {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* what) {
    throw std::runtime_error(std::string("ganfast._C: ") + what + " failed: " + cudaGetErrorString(err) +
                             " (cudaError " + std::to_string(static_cast<int>(err)) + ")");
}

inline void cuda_check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear a non-sticky error so the next call starts clean
        throw_cuda_error(err, what);
    }
}

// Makes `device` current for the lifetime of the guard and restores the
// caller's device afterwards.  The current device lives in the driver's
// context stack, which torch's CUDA runtime shares with ours, so leaving it
// changed would move torch's later work to the wrong device.
class DeviceGuard {
public:
    explicit DeviceGuard(int device) {
        cudaError_t err = cudaGetDevice(&previous_);
        if (err == cudaSuccess && previous_ != device) err = cudaSetDevice(device);
        if (err != cudaSuccess) {
            cudaGetLastError();
            previous_ = -1;
            throw std::runtime_error(std::string("ganfast._C: no usable CUDA device (cudaSetDevice(") +
                                     std::to_string(device) + "): " + cudaGetErrorString(err) + " (cudaError " +
                                     std::to_string(static_cast<int>(err)) +
                                     ")); the cuda backend needs an NVIDIA GPU and driver");
        }
    }
    ~DeviceGuard() {
        int current = -1;
        if (previous_ >= 0 && cudaGetDevice(&current) == cudaSuccess && current != previous_)
            cudaSetDevice(previous_);  // best effort: destructors must not throw
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = -1;
};

}  // namespace ganfast

#define CUDA_CHECK(expr) ::ganfast::cuda_check((expr), #expr)

namespace ganfast {

// Streaming multiprocessors of `device`: queried at call time (never at
// import) and remembered per device, since every launch asks.
inline int sm_count(int device) {
    constexpr int kMaxDevices = 64;
    static std::atomic<int> cache[kMaxDevices];  // static storage: starts at zero
    const bool cached = device >= 0 && device < kMaxDevices;
    if (cached) {
        int n = cache[device].load(std::memory_order_relaxed);
        if (n > 0) return n;
    }
    int n = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    if (cached) cache[device].store(n, std::memory_order_relaxed);
    return n;
}

}  // namespace ganfast

namespace ganfast {

// After every kernel launch: catches bad launch configurations (and reports
// a sticky fault left by earlier asynchronous work, rather than hiding it).
inline void check_launch(const char* kernel) {
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) throw_cuda_error(err, (std::string(kernel) + " kernel launch").c_str());
}

}  // namespace ganfast
