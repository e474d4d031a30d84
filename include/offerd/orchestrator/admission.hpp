// Admission control for the offer route: an adaptive concurrency limit driven by this process's
// own queueing delay.
//
// The signal is CoDel's: each worker thread measures how late a short periodic timer fires (the
// time its event loop needs to reach a new completion, which every request's every hop waits
// for). A *minimum* delay above the target over a whole interval is a standing queue, not a
// burst: the limit shrinks multiplicatively. When the limit refused work in an interval whose
// queues stayed short, it grows additively (AIMD). A slow upstream adds latency but no queueing
// delay here, so it never lowers the limit (the concurrency it needs is kept); a saturated CPU
// does. Pure: the clock and the delay samples come from the caller.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>

namespace offerd {

struct admission_config {
    std::size_t max_in_flight = 4'096;           // hard cap; the adaptive limit never exceeds it
    bool adaptive = true;                         // false: only the hard cap
    // Where the adaptive limit starts (within [min_limit, max_in_flight]). Not at the cap: 1024
    // connections arriving at once were all admitted, and served together they took 0.3-1 s each
    // until the first intervals had brought the limit down. It grows quickly while it refuses
    // work and the queues stay short (see roll).
    std::size_t start_limit = 256;
    // The limit never goes below this (nor above max_in_flight). A fixed queueing-delay target
    // cannot tell overload from a slow machine: under a sanitizer, or beside a compiler, the
    // event loops lag at any load, and without a floor a 64-connection run fell from 2.9k to
    // 1.4k offers/s at a limit of 16. 128 in flight is about 20 ms of work on two cores at 7k
    // offers/s (Little's law), so the floor alone keeps the admitted p99 near the 50 ms.
    std::size_t min_limit = 128;
    // Standing queueing delay that shrinks the limit. Measured with all roles in one process on 2
    // cores at 1024 connections: 2 ms kept 0.87 of the peak offers/s with a p99 of 110-160 ms;
    // 1 ms kept 0.91 with 55 ms; 0.5 ms met 20 ms but kept only 0.66 (a smaller limit sheds more).
    std::chrono::microseconds target{1'000};
    std::chrono::milliseconds interval{100};      // the window the minimum delay is taken over
    // While congested (see adaptive_limit::congested), a request whose member already has this
    // many requests waiting for their turn is answered 429 at once: a hot member's queue holds
    // slots that only wait, and its last request would wait for all of them. A turn under load
    // lasts as long as a whole request (every hop waits in the loaded event loops), so the bound
    // is the tail: measured on 2 cores at 1024 connections (README, Overload), the admitted p99
    // was 59 ms with 8 (the hottest member's requests were 440 of the slowest 475), 41 ms with 2
    // and 27 ms with 1, first second left out, at the same goodput. Bounded only while shedding,
    // a process fast enough not to shed at 256 connections let the benchmark's hottest member
    // (1.5 % of the rows) queue behind itself: p99 589-700 ms. Unbounded otherwise, so a burst of
    // one member's requests the process can serve is served in order.
    std::size_t member_waiting_when_congested = 1;
};

class adaptive_limit {
public:
    using clock = std::chrono::steady_clock;

    adaptive_limit(const admission_config& cfg, std::size_t workers, clock::time_point now = clock::now());

    // Takes a slot when fewer than limit() are in use; false: answer 503 (and count it).
    // `after_shed`: the request comes from a connection answered 503 last time; it gets a slot
    // only while an eighth of the limit (at least one slot) is free. Under sustained overload the
    // connections being served keep their turns: their next request is read at once and would
    // otherwise race the shed ones coming back, whose requests waited unread in the shed lane, so
    // every 200 they won would carry that wait to the client.
    bool try_acquire(bool after_shed = false) noexcept;
    void release() noexcept { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

    // One queueing-delay sample of worker `worker`'s event loop. Rolls the interval when due.
    void observe(std::size_t worker, std::chrono::microseconds delay, clock::time_point now = clock::now());

    std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
    std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
    std::uint64_t shed() const noexcept { return shed_.load(std::memory_order_relaxed); }
    std::uint64_t decreases() const noexcept { return decreases_.load(std::memory_order_relaxed); }
    std::uint64_t increases() const noexcept { return increases_.load(std::memory_order_relaxed); }
    // The largest of the workers' minimum delays in the last complete interval (µs).
    std::int64_t last_delay_us() const noexcept { return last_delay_us_.load(std::memory_order_relaxed); }
    bool adaptive() const noexcept { return cfg_.adaptive; }
    // Whether the limit refused a request in the last second.
    bool shedding(clock::time_point now = clock::now()) const noexcept {
        return now.time_since_epoch().count() - last_refusal_.load(std::memory_order_relaxed) <
               std::chrono::duration_cast<clock::duration>(std::chrono::seconds(1)).count();
    }
    // Shedding, or three quarters of the limit in flight: the load a member's queue must not
    // grow in. Below that the process serves what it admits quickly enough to queue a burst.
    bool congested(clock::time_point now = clock::now()) const noexcept {
        return shedding(now) || in_flight() * 4 >= limit() * 3;
    }

private:
    void roll(clock::time_point now);

    admission_config cfg_;
    std::size_t workers_;
    std::atomic<std::size_t> limit_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<bool> refused_{false};  // the limit refused work in this interval
    std::unique_ptr<std::atomic<std::int64_t>[]> min_us_;  // per worker, this interval; -1: no sample yet
    std::atomic<std::int64_t> interval_end_;               // clock ticks
    std::mutex roll_mu_;
    std::atomic<std::uint64_t> shed_{0}, decreases_{0}, increases_{0};
    std::atomic<std::int64_t> last_delay_us_{0};
    std::atomic<std::int64_t> last_refusal_{std::numeric_limits<std::int64_t>::min() / 2};  // clock ticks
};

}  // namespace offerd
