// Which worker owns each loopback port this process's upstream clients connect from, so that a
// listener in the same process serves such a connection on the same worker.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace offerd {

// With all roles in one process, every offer makes five upstream calls to our own listeners.
// Round-robin accept puts half of those connections on the other worker, and then every request
// and answer wakes the other thread (the profile at one connection: ~12% of CPU in cross-thread
// wake-ups, p50 206 us with two workers against 185 us with one). When the client's worker also
// serves the connection, a whole offer runs on one thread without hand-offs, and the workers
// still split the incoming connections. Nothing the kernel or Asio offers maps a connection to
// the thread of its peer in the same process, hence this table.
//
// Thread-safe: relaxed atomics; a stale or missing entry only costs the cross-thread hop.
// The clients claim a port after binding it and before connecting, and release it on close.
class loopback_affinity {
public:
    void claim(std::uint16_t port, std::size_t worker) noexcept {
        owner_[port].store(static_cast<std::uint16_t>(worker + 1), std::memory_order_relaxed);
    }
    void release(std::uint16_t port) noexcept { owner_[port].store(0, std::memory_order_relaxed); }
    std::optional<std::size_t> worker_of(std::uint16_t port) const noexcept {
        const std::uint16_t w = owner_[port].load(std::memory_order_relaxed);
        if (w == 0) return std::nullopt;
        return std::size_t{w} - 1u;
    }

private:
    std::array<std::atomic<std::uint16_t>, 65536> owner_{};  // worker + 1; 0: nobody in this process
};

}  // namespace offerd
