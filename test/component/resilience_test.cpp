// Retry budget and idempotency cache logic, with injected time (the breaker: test/unit/breaker_test.cpp).
#include <catch2/catch.hpp>

#include "offerd/store/idempotency_cache.hpp"
#include "offerd/orchestrator/resilience.hpp"

using namespace offerd;
using namespace std::chrono_literals;


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
