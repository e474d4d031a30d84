// A shorter CPU time slice for the worker threads, on kernels that take one.
#pragma once

#include <chrono>

namespace offerd {

// Linux 6.12+ (EEVDF) lets a SCHED_OTHER thread ask for its own time slice (sched_setattr's
// sched_runtime, 0.1-100 ms). With a short one, a worker that wakes with work gets a core sooner
// when the cores are contended, at the price of more context switches. Applies to the calling
// thread; 0 asks for the kernel's default. Threads running under another policy (chrt: batch,
// idle, real-time) are left alone, and nice is kept. Returns whether the kernel now reports that
// slice (for 0: whether it took the request); older kernels accept and ignore the field, so this
// is false there.
bool request_sched_slice(std::chrono::microseconds slice) noexcept;

}  // namespace offerd
