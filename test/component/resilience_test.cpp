// Circuit breaker, retry budget and idempotency cache logic, with injected time.
#include <catch2/catch.hpp>

#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/idempotency_cache.hpp"
#include "offerd/orchestrator/resilience.hpp"

using namespace offerd;
using namespace std::chrono_literals;

namespace {
logger& quiet_log() {
    static logger log(log_config{"/dev/null", log_level::off});
    return log;
}
}  // namespace

TEST_CASE("the breaker opens after the threshold of consecutive failures and not before", "[unit]") {
    circuit_breaker b("svc", breaker_config{3, 1000ms}, quiet_log());
    const auto t0 = circuit_breaker::clock::now();
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK_FALSE(b.admit(t0).has_value());
    b.on_success();  // resets the streak
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK_FALSE(b.admit(t0).has_value());
    b.on_failure(t0);
    REQUIRE(b.admit(t0 + 10ms).has_value());
    CHECK(*b.admit(t0 + 10ms) <= 1000ms);
    CHECK(std::string(b.state_name()) == "open");
}

TEST_CASE("after the open period exactly one probe is let through and its success closes the circuit", "[unit]") {
    circuit_breaker b("svc", breaker_config{1, 100ms}, quiet_log());
    const auto t0 = circuit_breaker::clock::now();
    b.on_failure(t0);
    CHECK(b.admit(t0 + 50ms).has_value());
    CHECK_FALSE(b.admit(t0 + 150ms).has_value());  // the probe
    CHECK(b.admit(t0 + 151ms).has_value());        // others still fail fast
    CHECK(std::string(b.state_name()) == "half_open");
    b.on_success();
    CHECK(std::string(b.state_name()) == "closed");
    CHECK_FALSE(b.admit(t0 + 152ms).has_value());
}

TEST_CASE("a failed probe opens the circuit again for a full period", "[unit]") {
    circuit_breaker b("svc", breaker_config{1, 100ms}, quiet_log());
    const auto t0 = circuit_breaker::clock::now();
    b.on_failure(t0);
    REQUIRE_FALSE(b.admit(t0 + 100ms).has_value());
    b.on_failure(t0 + 120ms);
    CHECK(std::string(b.state_name()) == "open");
    CHECK(b.admit(t0 + 200ms).has_value());
    CHECK_FALSE(b.admit(t0 + 221ms).has_value());
}

TEST_CASE("a threshold of zero disables the breaker", "[unit]") {
    circuit_breaker b("svc", breaker_config{0, 100ms}, quiet_log());
    for (int i = 0; i < 100; ++i) b.on_failure();
    CHECK_FALSE(b.admit().has_value());
}

TEST_CASE("the retry budget allows a reserve then about ratio retries per request", "[unit]") {
    retry_budget budget(0.1);
    int granted = 0;
    for (int i = 0; i < 100; ++i) granted += budget.try_spend() ? 1 : 0;
    CHECK(granted == 10);  // the reserve
    for (int i = 0; i < 100; ++i) budget.on_request();
    granted = 0;
    for (int i = 0; i < 100; ++i) granted += budget.try_spend() ? 1 : 0;
    CHECK(granted >= 9);  // 100 * 0.1 = 10 tokens, less a rounding error
    CHECK(granted <= 10);
}

TEST_CASE("idempotency entries expire after the retention and the oldest go beyond capacity", "[unit]") {
    idempotency_cache cache(1000ms, 16);  // one entry per shard
    const auto t0 = idempotency_cache::clock::now();
    cache.store("a", {1, 200, "A"}, t0);
    CHECK(cache.find("a", t0 + 999ms).has_value());
    CHECK_FALSE(cache.find("a", t0 + 1000ms).has_value());
    CHECK_FALSE(cache.insert_if_absent("b", {2, 200, "B"}, t0).has_value());
    const auto again = cache.insert_if_absent("b", {3, 200, "C"}, t0);
    REQUIRE(again.has_value());
    CHECK(again->body == "B");
    cache.erase("b");
    CHECK_FALSE(cache.find("b", t0).has_value());
}
