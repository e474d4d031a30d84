// The circuit breaker's state machine with an injected clock (built into component_tests: it lives in offerd_core).
#include <catch2/catch.hpp>

#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/resilience.hpp"

using namespace offerd;
using namespace std::chrono_literals;
using cb = circuit_breaker;

namespace {
logger& quiet_log() {
    static logger log(log_config{"/dev/null", log_level::off});
    return log;
}

breaker_config small(int min_calls = 4, std::chrono::milliseconds open_for = 100ms, int probes = 1) {
    breaker_config c;
    c.window = 1000ms;
    c.min_calls = min_calls;
    c.failure_rate = 0.5;
    c.open_for = open_for;
    c.half_open_probes = probes;
    return c;
}

// One admitted call that ends with `o` at `now`; false when the breaker refused it.
bool call(cb& b, call_outcome o, cb::clock::time_point now) {
    const auto a = b.admit(now);
    if (!a) return false;
    b.record(a, o, now);
    return true;
}

// Opens `b` with unhealthy calls at t; returns the time it opened.
cb::clock::time_point open_it(cb& b, cb::clock::time_point t, int n = 4) {
    for (int i = 0; i < n; ++i) call(b, call_outcome::unhealthy, t);
    REQUIRE(b.current() == cb::open);
    return t;
}
}  // namespace

TEST_CASE("the breaker stays closed below the minimum volume even when every call failed", "[unit]") {
    cb b("svc", small(4), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 3; ++i) CHECK(call(b, call_outcome::unhealthy, t0));
    CHECK(b.current() == cb::closed);
    CHECK(call(b, call_outcome::unhealthy, t0));
    CHECK(b.current() == cb::open);
}

TEST_CASE("the breaker opens at the failure rate and not below it", "[unit]") {
    cb b("svc", small(4), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 6; ++i) call(b, call_outcome::success, t0);
    for (int i = 0; i < 5; ++i) call(b, call_outcome::unhealthy, t0);  // 5 of 11: below 50 %
    CHECK(b.current() == cb::closed);
    call(b, call_outcome::unhealthy, t0);  // 6 of 12
    CHECK(b.current() == cb::open);
    CHECK(b.transitions(cb::closed, cb::open) == 1);
}

TEST_CASE("failures older than the window are forgotten", "[unit]") {
    cb b("svc", small(4), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 3; ++i) call(b, call_outcome::unhealthy, t0);
    call(b, call_outcome::unhealthy, t0 + 1500ms);  // the first three have left the 1 s window
    CHECK(b.current() == cb::closed);
}

TEST_CASE("a burst of answers that reject one request each never opens the circuit alone", "[unit]") {
    cb b("svc", small(4), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 100; ++i) CHECK(call(b, call_outcome::request_rejected, t0));
    CHECK(b.current() == cb::closed);
}

TEST_CASE("a burst of request rejections among healthy traffic does not open the circuit", "[unit]") {
    cb b("svc", small(20), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 20; ++i) call(b, call_outcome::success, t0);
    for (int i = 0; i < 20; ++i) CHECK(call(b, call_outcome::request_rejected, t0));  // 10 poison requests, 2 calls each
    CHECK(b.current() == cb::closed);
}

TEST_CASE("a refusing upstream opens the circuit within the window", "[unit]") {
    cb b("svc", breaker_config{}, quiet_log());  // the defaults: 20 calls in 10 s, 50 %
    const auto t0 = cb::clock::now();
    int admitted = 0;
    for (int i = 0; i < 40 && b.current() == cb::closed; ++i) admitted += call(b, call_outcome::unhealthy, t0 + i * 100ms) ? 1 : 0;
    CHECK(b.current() == cb::open);
    CHECK(admitted == 20);
    const auto refused = b.admit(t0 + 2s);
    REQUIRE_FALSE(refused);
    CHECK(refused.retry_after >= 1ms);
    CHECK(refused.retry_after <= breaker_config{}.open_for);
}

TEST_CASE("a min-calls of zero disables the breaker", "[unit]") {
    cb b("svc", small(0), quiet_log());
    const auto t0 = cb::clock::now();
    for (int i = 0; i < 100; ++i) CHECK(call(b, call_outcome::unhealthy, t0));
    CHECK(b.current() == cb::closed);
}

TEST_CASE("half-open lets only the configured number of probes through at once", "[unit]") {
    cb b("svc", small(4, 100ms, 2), quiet_log());
    const auto t0 = open_it(b, cb::clock::now());
    CHECK_FALSE(b.admit(t0 + 50ms));
    const auto p1 = b.admit(t0 + 100ms);
    const auto p2 = b.admit(t0 + 100ms);
    CHECK(p1);
    CHECK(p2);
    CHECK(b.current() == cb::half_open);
    CHECK_FALSE(b.admit(t0 + 101ms));  // both slots taken
    b.record(p1, call_outcome::success, t0 + 102ms);
    CHECK(b.current() == cb::half_open);  // one of two probes succeeded
    const auto p3 = b.admit(t0 + 103ms);  // the freed slot
    CHECK(p3);
    CHECK_FALSE(b.admit(t0 + 103ms));
    b.record(p2, call_outcome::success, t0 + 104ms);
    CHECK(b.current() == cb::closed);
    CHECK(b.transitions(cb::half_open, cb::closed) == 1);
}

TEST_CASE("the circuit never goes from open to closed without a probe", "[unit]") {
    cb b("svc", small(4, 100ms), quiet_log());
    const auto t0 = cb::clock::now();
    const auto early = b.admit(t0);  // admitted while closed, finishes after the circuit opened
    open_it(b, t0);
    b.record(early, call_outcome::success, t0 + 1ms);
    CHECK(b.current() == cb::open);
    for (int i = 0; i < 10; ++i) CHECK_FALSE(call(b, call_outcome::success, t0 + 2ms));
    CHECK(b.current() == cb::open);
    CHECK(b.transitions(cb::open, cb::closed) == 0);
    CHECK(call(b, call_outcome::success, t0 + 100ms));  // the probe
    CHECK(b.current() == cb::closed);
    CHECK(b.transitions(cb::open, cb::half_open) == 1);
}

TEST_CASE("a failed probe opens the circuit again for a full period", "[unit]") {
    cb b("svc", small(4, 100ms), quiet_log());
    const auto t0 = open_it(b, cb::clock::now());
    const auto probe = b.admit(t0 + 100ms);
    REQUIRE(probe);
    b.record(probe, call_outcome::unhealthy, t0 + 120ms);
    CHECK(b.current() == cb::open);
    CHECK(b.transitions(cb::half_open, cb::open) == 1);
    CHECK_FALSE(b.admit(t0 + 200ms));
    CHECK(b.admit(t0 + 221ms));
}

TEST_CASE("a probe abandoned for our own deadline frees its slot without a verdict", "[unit]") {
    cb b("svc", small(4, 100ms), quiet_log());
    const auto t0 = open_it(b, cb::clock::now());
    const auto probe = b.admit(t0 + 100ms);
    REQUIRE(probe);
    b.record(probe, call_outcome::abandoned, t0 + 110ms);
    CHECK(b.current() == cb::half_open);
    CHECK(call(b, call_outcome::success, t0 + 111ms));
    CHECK(b.current() == cb::closed);
}

TEST_CASE("a probe that never reports is replaced after an open period", "[unit]") {
    cb b("svc", small(4, 100ms), quiet_log());
    const auto t0 = open_it(b, cb::clock::now());
    REQUIRE(b.admit(t0 + 100ms));  // lost
    CHECK_FALSE(b.admit(t0 + 150ms));
    CHECK(call(b, call_outcome::success, t0 + 200ms));
    CHECK(b.current() == cb::closed);
}

TEST_CASE("after closing the breaker judges from fresh observations", "[unit]") {
    cb b("svc", small(4, 100ms), quiet_log());
    const auto t0 = open_it(b, cb::clock::now());
    REQUIRE(call(b, call_outcome::success, t0 + 100ms));
    REQUIRE(b.current() == cb::closed);
    call(b, call_outcome::unhealthy, t0 + 101ms);  // one failure after closing: below the volume
    CHECK(b.current() == cb::closed);
}
