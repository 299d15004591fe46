// bias_act kernels: y = clamp(act(x + b[c]) * gain) and its gradient.
//
// Memory traffic: the forward pass reads x and writes y (2 * numel * sizeof(T)
// bytes), the backward pass reads g and x and writes dz (3 * numel *
// sizeof(T)); the bias is a few kilobytes that stay in L1/L2.  At H100's
// ~3.3 TB/s a bf16 element costs ~1.2 ps of DRAM time in the forward pass, so
// the per-element work has to stay within a few dozen instructions, and the
// loads must be wide and plentiful enough to keep ~2 MB in flight:
//   * 16-byte vector loads and stores when every data pointer is 16-byte
//     aligned (a scalar path serves misaligned views), plus a scalar tail;
//   * several independent vectors per thread per iteration, all loads issued
//     before any maths (memory-level parallelism);
//   * a grid of (SM count) x (resident blocks per SM), grid-stride looped;
//   * the channel of an element, (i / channel_stride) % channels, found with
//     two multiply-high divisions once per vector and stepped incrementally
//     inside it (a 64-bit division, done in software on GPUs, per element
//     would cost more than the element's memory time);
//   * 32-bit indexing when every index fits, 64-bit otherwise.
//
// The element maths is written once, as __host__ __device__ functions, so
// that bias_act_*_host can run the very same bodies on the CPU for tests.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "bias_act.h"
#include "common.h"

namespace ganfast {
namespace {

constexpr int kThreads = 256;  // threads per block
// Independent vectors (or scalars) per thread per iteration: 4 for the
// forward pass (one input), 2 for the backward pass (two inputs), so either
// way a thread has 64 bytes of loads in flight.
constexpr int kUnrollForward = 4;
constexpr int kUnrollBackward = 2;
// At least 4 resident blocks (1024 threads, <= 64 registers each) per SM:
// >= 64 KB of loads in flight per SM, several times what HBM's
// latency-bandwidth product (~3.3 TB/s x ~0.7 us over 132 SMs) asks for.
constexpr int kMinBlocksPerSm = 4;

// --- storage <-> compute conversions -----------------------------------------

template <typename T> struct ComputeOf { using type = float; };
template <> struct ComputeOf<double> { using type = double; };
template <typename T> using compute_t = typename ComputeOf<T>::type;

__host__ __device__ inline float to_compute(float v) { return v; }
__host__ __device__ inline float to_compute(__half v) { return __half2float(v); }
__host__ __device__ inline float to_compute(__nv_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ inline double to_compute(double v) { return v; }

template <typename T> __host__ __device__ inline T from_compute(compute_t<T> v);
template <> __host__ __device__ inline float from_compute<float>(float v) { return v; }
template <> __host__ __device__ inline __half from_compute<__half>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ inline __nv_bfloat16 from_compute<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __host__ __device__ inline double from_compute<double>(double v) { return v; }

// Fast = true (float16 / bfloat16 storage): the hardware approximations,
// whose ~1e-6 (exp, reciprocal) and ~5e-4 (tanh) relative errors vanish in
// the output's own rounding (2^-9 for bfloat16, 2^-11 for float16) and keep
// the transcendental activations memory-bound.  float32 and float64 get the
// correctly rounded library functions: their tolerance is 1e-5 and tighter.
// The host (emulation) always takes the library path.
template <bool Fast> __host__ __device__ inline float exp_(float v) {
#ifdef __CUDA_ARCH__
    if constexpr (Fast) return __expf(v);
#endif
    return expf(v);
}
template <bool Fast> __host__ __device__ inline double exp_(double v) { return exp(v); }
template <bool Fast> __host__ __device__ inline float tanh_(float v) {
#ifdef __CUDA_ARCH__
    if constexpr (Fast) {
        float r;
        asm("tanh.approx.f32 %0, %1;" : "=f"(r) : "f"(v));  // sm_75+
        return r;
    }
#endif
    return tanhf(v);
}
template <bool Fast> __host__ __device__ inline double tanh_(double v) { return tanh(v); }
template <bool Fast> __host__ __device__ inline float recip_(float v) {
#ifdef __CUDA_ARCH__
    if constexpr (Fast) return __fdividef(1.0f, v);
#endif
    return 1.0f / v;
}
template <bool Fast> __host__ __device__ inline double recip_(double v) { return 1.0 / v; }
__host__ __device__ inline float abs_(float v) { return fabsf(v); }
__host__ __device__ inline double abs_(double v) { return fabs(v); }

// --- activations -----------------------------------------------------------------
// Comparisons are arranged so that NaN propagates exactly as in torch, and
// derivatives follow torch's backward formulas (relu passes the gradient of
// a NaN input through, leaky_relu gives it the slope, clamp's mask is
// inclusive): the reference, ganfast/ref/bias_act.py, is the definition.

// Numerically stable logistic function: exp never overflows.
template <bool Fast, typename C> __host__ __device__ inline C sigmoid(C z) {
    const C e = exp_<Fast>(-abs_(z));
    const C r = recip_<Fast>(C(1) + e);
    return z >= C(0) ? r : e * r;
}

template <Act A, bool Fast, typename C> __host__ __device__ inline C act_value(C z, C alpha) {
    if constexpr (A == Act::Linear) {
        return z;
    } else if constexpr (A == Act::Relu) {
        return z < C(0) ? C(0) : z;
    } else if constexpr (A == Act::LeakyRelu) {
        return z > C(0) ? z : z * alpha;
    } else if constexpr (A == Act::Tanh) {
        return tanh_<Fast>(z);
    } else if constexpr (A == Act::Sigmoid) {
        return sigmoid<Fast>(z);
    } else {
        static_assert(A == Act::Silu, "unhandled activation");
        return z * sigmoid<Fast>(z);
    }
}

// act(z) and act'(z) together, sharing tanh / sigmoid.
template <typename C> struct ValueSlope {
    C value;  // act(z)
    C slope;  // act'(z)
};

template <Act A, bool Fast, typename C> __host__ __device__ inline ValueSlope<C> act_value_slope(C z, C alpha) {
    if constexpr (A == Act::Linear) {
        return {z, C(1)};
    } else if constexpr (A == Act::Relu) {
        const C a = z < C(0) ? C(0) : z;
        return {a, a <= C(0) ? C(0) : C(1)};  // torch: threshold_backward on the output, so NaN z passes
    } else if constexpr (A == Act::LeakyRelu) {
        return {z > C(0) ? z : z * alpha, z > C(0) ? C(1) : alpha};
    } else if constexpr (A == Act::Tanh) {
        const C t = tanh_<Fast>(z);
        return {t, C(1) - t * t};
    } else if constexpr (A == Act::Sigmoid) {
        const C s = sigmoid<Fast>(z);
        return {s, s * (C(1) - s)};
    } else {
        static_assert(A == Act::Silu, "unhandled activation");
        const C s = sigmoid<Fast>(z);
        return {z * s, s * (C(1) + z * (C(1) - s))};
    }
}

// The gradient gz of act's output times act'(z), as torch's own backward
// computes it: relu's is a select (a NaN or inf gradient where the slope is
// 0 gives 0); the others are products (leaky_relu's select z > 0 ? gz :
// gz * alpha is the same thing, since gz * 1 == gz bit for bit).
template <Act A, typename C> __host__ __device__ inline C apply_slope(C gz, C slope) {
    if constexpr (A == Act::Relu) {
        return slope > C(0) ? gz : C(0);
    } else {
        return gz * slope;
    }
}

// --- per-element epilogues ----------------------------------------------------

template <typename C, bool Fast> struct Scalars {
    C alpha, gain, clamp;
    bool has_clamp;
};

template <Act A, typename C, bool Fast>
__host__ __device__ inline C forward_element(C z, const Scalars<C, Fast>& s) {
    const C y = act_value<A, Fast>(z, s.alpha) * s.gain;
    if (!s.has_clamp) return y;
    return y > s.clamp ? s.clamp : (y < -s.clamp ? -s.clamp : y);  // NaN passes through, as in torch.clamp
}

// Chain rule in torch's order: clamp's backward (a select on the gradient,
// inclusive at the bounds), the gain, then the activation's backward.  Like
// torch, a NaN z under tanh/sigmoid/silu gives NaN even where the clamp
// zeroed the gradient (0 * NaN slope).
template <Act A, typename C, bool Fast>
__host__ __device__ inline C backward_element(C g, C z, const Scalars<C, Fast>& s) {
    const ValueSlope<C> vs = act_value_slope<A, Fast>(z, s.alpha);
    C gz = g * s.gain;
    if (s.has_clamp) {
        const C y = vs.value * s.gain;
        gz = (y >= -s.clamp && y <= s.clamp) ? gz : C(0);  // a select: 0 * inf would be NaN
    }
    return apply_slope<A>(gz, vs.slope);
}

// --- index arithmetic --------------------------------------------------------------

// n / d by multiply-high and shift (Granlund & Montgomery), exact for
// n, d < 2^31: the 32-bit path guarantees both.
template <typename I> struct DivMod;

template <> struct DivMod<uint32_t> {
    uint32_t divisor = 1, magic = 1, shift = 0;
    DivMod() = default;
    explicit DivMod(uint32_t d) : divisor(d) {
        while (shift < 32 && (uint64_t(1) << shift) < d) ++shift;
        magic = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
    }
    __host__ __device__ uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
        const uint32_t t = __umulhi(n, magic);
#else
        const uint32_t t = uint32_t((uint64_t(n) * magic) >> 32);
#endif
        return (t + n) >> shift;
    }
};

template <> struct DivMod<uint64_t> {
    uint64_t divisor = 1;
    DivMod() = default;
    explicit DivMod(uint64_t d) : divisor(d) {}
    __host__ __device__ uint64_t div(uint64_t n) const { return n / divisor; }
};

// Channel of consecutive memory offsets: one division pair to start, then an
// increment with wrap-around per element.
template <typename I> struct ChannelIter {
    I offset = 0;   // position inside the current run of channel_stride elements
    I channel = 0;  // channel index
    ChannelIter() = default;  // no bias: never advanced
    __host__ __device__ ChannelIter(I i, const DivMod<I>& stride, const DivMod<I>& channels) {
        const I q = stride.div(i);
        offset = i - q * stride.divisor;
        channel = q - channels.div(q) * channels.divisor;
    }
    __host__ __device__ void next(const DivMod<I>& stride, const DivMod<I>& channels) {
        if (++offset == stride.divisor) {
            offset = 0;
            if (++channel == channels.divisor) channel = 0;
        }
    }
};

// --- memory access --------------------------------------------------------------

template <typename T> struct alignas(16) Pack {
    static constexpr int size = 16 / int(sizeof(T));
    T v[size];
};

template <typename T> __host__ __device__ inline Pack<T> load_pack(const T* p) {
    Pack<T> out;
#ifdef __CUDA_ARCH__
    const uint4 bits = __ldg(reinterpret_cast<const uint4*>(p));
    memcpy(static_cast<void*>(&out), &bits, sizeof(out));
#else
    memcpy(static_cast<void*>(&out), static_cast<const void*>(p), sizeof(out));
#endif
    return out;
}

template <typename T> __host__ __device__ inline void store_pack(T* p, const Pack<T>& v) {
#ifdef __CUDA_ARCH__
    uint4 bits;
    memcpy(&bits, static_cast<const void*>(&v), sizeof(bits));
    *reinterpret_cast<uint4*>(p) = bits;
#else
    memcpy(static_cast<void*>(p), static_cast<const void*>(&v), sizeof(v));
#endif
}

template <typename T> __host__ __device__ inline T load(const T* p) {
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

// Everything a kernel needs, typed: built once per call on the host.
template <typename T, typename I> struct KernelArgs {
    const T* x;
    const compute_t<T>* b;  // null: no bias
    const T* g;             // backward only
    T* out;
    I numel;
    DivMod<I> stride;    // channel_stride
    DivMod<I> channels;  // channels
    Scalars<compute_t<T>, sizeof(T) == 2> s;  // fast maths for 16-bit storage
    bool vectorized;  // every data pointer is 16-byte aligned
};

template <typename T, typename I>
__host__ __device__ inline compute_t<T> bias_at(const KernelArgs<T, I>& k, I channel) {
    return load(k.b + channel);
}

// --- kernel body ------------------------------------------------------------------
// One body serves both directions and both access widths:
//   * Backward: the forward reads x, the backward reads x and g; the rest
//     (channel of each element, z = x + b, the epilogue) is shared.
//   * W elements per unit: W = Pack<T>::size for 16-byte vectors (every data
//     pointer aligned), W = 1 for the scalar path (misaligned views) and for
//     the ragged tail of the vector path.
// Thread `tid` of `nthreads` handles units tid, tid + nthreads, ... so a
// warp's accesses are consecutive (fully coalesced), `Unroll` units per
// iteration with every load issued before any maths.

template <int W, typename T> struct Unit {
    T v[W];
};

template <int W, typename T> __host__ __device__ inline Unit<W, T> load_unit(const T* p) {
    Unit<W, T> u;
    if constexpr (W == 1) {
        u.v[0] = load(p);
    } else {
        static_assert(W == Pack<T>::size, "a unit is one element or one 16-byte vector");
        const Pack<T> pack = load_pack(p);
#pragma unroll
        for (int e = 0; e < W; ++e) u.v[e] = pack.v[e];
    }
    return u;
}

template <int W, typename T> __host__ __device__ inline void store_unit(T* p, const Unit<W, T>& u) {
    if constexpr (W == 1) {
        *p = u.v[0];
    } else {
        Pack<T> pack;
#pragma unroll
        for (int e = 0; e < W; ++e) pack.v[e] = u.v[e];
        store_pack(p, pack);
    }
}

// Units [first, first + count) of W elements each, starting at element first * W.
template <typename T, Act A, bool Backward, int W, int Unroll, typename I>
__host__ __device__ inline void run_units(const KernelArgs<T, I>& k, I first, I count, I tid, I nthreads) {
    using C = compute_t<T>;
    const bool has_bias = k.b != nullptr;
    for (I u0 = tid; u0 < count; u0 += nthreads * Unroll) {
        Unit<W, T> xin[Unroll] = {}, gin[Unroll] = {};
#pragma unroll
        for (int u = 0; u < Unroll; ++u) {
            const I unit = u0 + I(u) * nthreads;
            if (unit < count) {
                const I i = (first + unit) * W;
                xin[u] = load_unit<W>(k.x + i);
                if constexpr (Backward) gin[u] = load_unit<W>(k.g + i);
            }
        }
#pragma unroll
        for (int u = 0; u < Unroll; ++u) {
            const I unit = u0 + I(u) * nthreads;
            if (unit < count) {
                const I i = (first + unit) * W;
                Unit<W, T> out;
                ChannelIter<I> ch = has_bias ? ChannelIter<I>(i, k.stride, k.channels) : ChannelIter<I>();
#pragma unroll
                for (int e = 0; e < W; ++e) {
                    C z = to_compute(xin[u].v[e]);
                    if (has_bias) {
                        z += bias_at(k, ch.channel);
                        ch.next(k.stride, k.channels);
                    }
                    if constexpr (Backward)
                        out.v[e] = from_compute<T>(backward_element<A>(to_compute(gin[u].v[e]), z, k.s));
                    else
                        out.v[e] = from_compute<T>(forward_element<A>(z, k.s));
                }
                store_unit<W>(k.out + i, out);
            }
        }
    }
}

// Independent units per thread per iteration: 4 for the forward pass (one
// input), 2 for the backward pass (two inputs), so either way a thread has
// 64 bytes of loads in flight on the vector path.
template <bool Backward> constexpr int kUnroll = Backward ? kUnrollBackward : kUnrollForward;

template <typename T, Act A, bool Backward, typename I>
__host__ __device__ inline void body(const KernelArgs<T, I>& k, I tid, I nthreads) {
    constexpr int V = Pack<T>::size;
    constexpr int U = kUnroll<Backward>;
    if (k.vectorized) {
        const I nvec = k.numel / V;
        run_units<T, A, Backward, V, U>(k, I(0), nvec, tid, nthreads);
        // The ragged tail, fewer than V elements.
        run_units<T, A, Backward, 1, 1>(k, nvec * V, k.numel - nvec * V, tid, nthreads);
    } else {
        run_units<T, A, Backward, 1, U>(k, I(0), k.numel, tid, nthreads);
    }
}

template <typename T, Act A, bool Backward, typename I>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) bias_act_kernel(const KernelArgs<T, I> k) {
    body<T, A, Backward, I>(k, I(blockIdx.x) * kThreads + threadIdx.x, I(gridDim.x) * kThreads);
}

// --- host side: argument packing, grid sizing, the kernel chooser ---------------

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

template <typename T, typename I> KernelArgs<T, I> make_args(const BiasActParams& p, bool backward) {
    using C = compute_t<T>;
    // (i / stride) % channels is unchanged when stride and channels are capped
    // at numel (every i < numel), and the cap keeps them in the 32-bit range.
    const int64_t n = std::max<int64_t>(p.numel, 1);
    KernelArgs<T, I> k;
    k.x = static_cast<const T*>(p.x);
    k.b = static_cast<const C*>(p.b);
    k.g = static_cast<const T*>(p.g);
    k.out = static_cast<T*>(p.out);
    k.numel = I(p.numel);
    k.stride = DivMod<I>(I(std::min(p.channel_stride, n)));
    k.channels = DivMod<I>(I(std::min(p.channels, n)));
    k.s = {C(p.alpha), C(p.gain), C(p.clamp), p.clamp >= 0};
    k.vectorized = aligned16(p.x) && aligned16(p.out) && (!backward || aligned16(p.g));
    return k;
}

// Blocks of `Kernel` that fit on one SM at once, asked once per device.
template <auto Kernel> int resident_blocks_per_sm(int device) {
    constexpr int kMaxDevices = 64;
    static std::atomic<int> cache[kMaxDevices];
    const bool cached = device >= 0 && device < kMaxDevices;
    if (cached) {
        const int n = cache[device].load(std::memory_order_relaxed);
        if (n > 0) return n;
    }
    int n = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, kThreads, 0));
    n = std::max(n, 1);
    if (cached) cache[device].store(n, std::memory_order_relaxed);
    return n;
}

template <auto Kernel, int Unroll, typename T, typename I>
void launch(const KernelArgs<T, I>& k, int device, cudaStream_t stream, const char* name) {
    constexpr int V = Pack<T>::size;
    const int64_t units = k.vectorized ? int64_t(k.numel) / V : int64_t(k.numel);
    const int64_t per_block = int64_t(kThreads) * Unroll;
    const int64_t wanted = std::max<int64_t>(1, (units + per_block - 1) / per_block);
    const int64_t resident = int64_t(sm_count(device)) * resident_blocks_per_sm<Kernel>(device);
    const unsigned blocks = unsigned(std::min(wanted, resident));
    Kernel<<<blocks, kThreads, 0, stream>>>(k);
    check_launch(name);
}

bool fits_32bit(const BiasActParams& p) { return p.numel <= std::numeric_limits<int32_t>::max(); }

template <typename T, Act A, bool Backward, typename I>
void launch_indexed(const BiasActParams& p, int device, cudaStream_t stream) {
    launch<bias_act_kernel<T, A, Backward, I>, kUnroll<Backward>>(make_args<T, I>(p, Backward), device, stream,
                                                                  Backward ? "bias_act_backward" : "bias_act_forward");
}

template <typename T, Act A, bool Backward>
void dispatch_index(const BiasActParams& p, int device, cudaStream_t stream) {
    if (fits_32bit(p))
        launch_indexed<T, A, Backward, uint32_t>(p, device, stream);
    else
        launch_indexed<T, A, Backward, uint64_t>(p, device, stream);
}

template <typename T, Act A, bool Backward, typename I> void run_host(const BiasActParams& p, I nthreads) {
    const auto k = make_args<T, I>(p, Backward);
    for (I t = 0; t < nthreads; ++t) body<T, A, Backward, I>(k, t, nthreads);
}

// Runs f.template run<T, A>() for the runtime (dtype, act) pair: the kernel chooser.
template <typename T, typename F> void with_act(Act act, const F& f) {
    switch (act) {
        case Act::Linear: return f.template run<T, Act::Linear>();
        case Act::Relu: return f.template run<T, Act::Relu>();
        case Act::LeakyRelu: return f.template run<T, Act::LeakyRelu>();
        case Act::Tanh: return f.template run<T, Act::Tanh>();
        case Act::Sigmoid: return f.template run<T, Act::Sigmoid>();
        case Act::Silu: return f.template run<T, Act::Silu>();
    }
    throw std::invalid_argument("ganfast._C: bias_act: unknown activation code");
}

template <typename F> void with_types(DType dtype, Act act, const F& f) {
    switch (dtype) {
        case DType::Float32: return with_act<float>(act, f);
        case DType::Float16: return with_act<__half>(act, f);
        case DType::BFloat16: return with_act<__nv_bfloat16>(act, f);
        case DType::Float64: return with_act<double>(act, f);
    }
    throw std::invalid_argument("ganfast._C: bias_act: unknown dtype code");
}

template <bool Backward> struct OnDevice {
    const BiasActParams& p;
    int device;
    cudaStream_t stream;
    template <typename T, Act A> void run() const { dispatch_index<T, A, Backward>(p, device, stream); }
};

template <bool Backward> struct OnHost {
    const BiasActParams& p;
    int64_t num_threads;
    bool index64;
    template <typename T, Act A> void run() const {
        if (index64 || !fits_32bit(p) || num_threads > std::numeric_limits<int32_t>::max())
            run_host<T, A, Backward, uint64_t>(p, uint64_t(num_threads));
        else
            run_host<T, A, Backward, uint32_t>(p, uint32_t(num_threads));
    }
};

}  // namespace

void bias_act_forward(const BiasActParams& p, DType dtype, Act act, int device, cudaStream_t stream) {
    if (p.numel == 0) return;
    DeviceGuard guard(device);
    with_types(dtype, act, OnDevice<false>{p, device, stream});
}

void bias_act_backward(const BiasActParams& p, DType dtype, Act act, int device, cudaStream_t stream) {
    if (p.numel == 0) return;
    DeviceGuard guard(device);
    with_types(dtype, act, OnDevice<true>{p, device, stream});
}

void bias_act_forward_host(const BiasActParams& p, DType dtype, Act act, int64_t num_threads, bool index64) {
    if (p.numel == 0) return;
    with_types(dtype, act, OnHost<false>{p, num_threads, index64});
}

void bias_act_backward_host(const BiasActParams& p, DType dtype, Act act, int64_t num_threads, bool index64) {
    if (p.numel == 0) return;
    with_types(dtype, act, OnHost<true>{p, num_threads, index64});
}

}  // namespace ganfast
