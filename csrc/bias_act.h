// bias_act: y = clamp(act(x + b[c]) * gain), and its gradient, for dense
// arrays in any memory layout.  Parameter struct and launchers; the kernels
// are in bias_act.cu, the Python-facing checks in bindings.cpp.
//
// This header is plain C++ so that bindings.cpp can be compiled by the host
// compiler alone.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ganfast {

// The activations, in one table: the binding maps the Python name to the
// enum through kActNames, so no integer code is shared with Python.
enum class Act : int { Linear, Relu, LeakyRelu, Tanh, Sigmoid, Silu };
inline constexpr const char* kActNames[] = {"linear", "relu", "leaky_relu", "tanh", "sigmoid", "silu"};
inline constexpr std::size_t kNumActs = sizeof(kActNames) / sizeof(kActNames[0]);

// Storage dtypes.  float16/bfloat16/float32 compute in float32 and take a
// float32 bias; float64 computes in, and takes a bias of, float64.
enum class DType : int { Float32, Float16, BFloat16, Float64 };
inline constexpr const char* kDTypeNames[] = {"float32", "float16", "bfloat16", "float64"};
inline constexpr std::size_t kNumDTypes = sizeof(kDTypeNames) / sizeof(kDTypeNames[0]);

struct BiasActParams {
    const void* x = nullptr;  // input of the forward pass: numel elements of the storage dtype
    const void* b = nullptr;  // bias: `channels` elements of the compute dtype, or null for none
    const void* g = nullptr;  // backward only: gradient of y, like x
    void* out = nullptr;      // forward: y; backward: the gradient of x (and, summed, of b)
    int64_t numel = 0;
    // The element at memory offset i belongs to channel (i / channel_stride) % channels,
    // which covers any dense layout: NCHW has channel_stride = H*W, channels_last 1.
    int64_t channels = 1;
    int64_t channel_stride = 1;
    double alpha = 0.0;   // leaky_relu's negative slope (ignored by the other activations)
    double gain = 1.0;    // applied after the activation
    double clamp = -1.0;  // clamp(y, -clamp, clamp) after the gain; negative: no clamp
};

// Launch on `stream` of `device`.  Arguments are assumed checked (bindings.cpp).
void bias_act_forward(const BiasActParams& p, DType dtype, Act act, int device, cudaStream_t stream);
void bias_act_backward(const BiasActParams& p, DType dtype, Act act, int device, cudaStream_t stream);

// The same kernel bodies, run on the host over host pointers, one simulated
// thread of a `num_threads`-thread grid after another.  For testing the maths,
// the index arithmetic and the vector/tail paths on machines without a GPU;
// `index64` forces the 64-bit indexing path.
void bias_act_forward_host(const BiasActParams& p, DType dtype, Act act, int64_t num_threads, bool index64);
void bias_act_backward_host(const BiasActParams& p, DType dtype, Act act, int64_t num_threads, bool index64);

}  // namespace ganfast
