// The outbox: deferred writes keep their order, count in features, and reach member-data later.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "offerd/orchestrator/orchestrator_service.hpp"
#include "offerd/orchestrator/outbox.hpp"
#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
transaction txn(const std::string& member, int points) {
    return make_transaction(member, "2024-06-01T10:00:00Z", "BUY", points, 1).value();
}

std::string temp_dir() {
    const std::string p = temp_path("outbox");
    std::filesystem::remove(p);
    std::filesystem::create_directory(p);
    return p;
}
}  // namespace

TEST_CASE("outbox entries survive a restart in order, acknowledged ones do not", "[component]") {
    const std::string dir = temp_dir();
    {
        outbox box(outbox_config{dir, true});
        REQUIRE(box.add("k1", txn("A", 1)));
        REQUIRE(box.add("k2", txn("B", 2)));
        REQUIRE(box.add("k3", txn("A", 3)));
        box.acknowledge(box.front()->seq);
    }
    outbox again(outbox_config{dir, true});
    const auto items = again.snapshot();
    REQUIRE(items.size() == 2);
    CHECK(items[0].key == "k2");
    CHECK(items[1].key == "k3");
    CHECK(items[1].txn == txn("A", 3));
    CHECK(again.pending_for("A").size() == 1);
    CHECK(again.has_pending("B"));
    CHECK_FALSE(again.has_pending("C"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("a torn last outbox record is ignored on replay", "[component]") {
    const std::string dir = temp_dir();
    {
        outbox box(outbox_config{dir, false});
        REQUIRE(box.add("k1", txn("A", 1)));
        REQUIRE(box.add("k2", txn("A", 2)));
    }
    {
        std::ofstream out(dir + "/outbox.log", std::ios::app);
        out << "P 9 12345 {\"key\":\"k9\",\"txn\":{\"memberId\":\"A\"";  // crash mid-write
    }
    outbox again(outbox_config{dir, false});
    CHECK(again.size() == 2);
    // The compacted file no longer carries the torn record.
    outbox third(outbox_config{dir, false});
    CHECK(third.size() == 2);
    std::filesystem::remove_all(dir);
}

TEST_CASE("writes member-data refuses are seen by later requests and delivered in order once it recovers", "[component]") {
    std::atomic<bool> down{true};
    fake_upstream md([&](const request& r) {
        if (r.method() == http::verb::get) return detail_response(http::status::not_found, "Member not found");
        if (down) return detail_response(http::status::service_unavailable, "maintenance");
        return json_response(http::status::ok, std::string(r.body()));
    });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.retry.max_attempts = 1;
        c.orchestrator.breaker.min_calls = 0;
        c.orchestrator.outbox.retry_min = std::chrono::milliseconds(20);
        c.orchestrator.outbox.retry_max = std::chrono::milliseconds(40);
    });
    const auto port = app.port(role::orchestrator);
    for (int i = 1; i <= 3; ++i) REQUIRE(post(port, "/member/offer", txn_body("OB", "2024-06-01T10:00:00Z", "BUY", i, 1)).status == 200);
    std::vector<std::int64_t> pending_seen;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") == "offer") pending_seen.push_back(v.at("pending_writes").to_number<std::int64_t>());
    }
    CHECK(pending_seen == std::vector<std::int64_t>{0, 1, 2});

    down = false;
    std::vector<double> delivered;
    for (int i = 0; i < 250 && delivered.size() < 3; ++i) {  // bounded: 5 s
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        delivered.clear();
        std::set<std::string> keys;
        for (const auto& r : md.requests()) {
            if (r.method() != http::verb::post) continue;
            if (!keys.insert(std::string(r["Idempotency-Key"])).second) continue;  // a retried delivery
            delivered.push_back(json::parse(r.body()).at("lastTransactionPointsBought").to_number<double>());
        }
    }
    CHECK(delivered == std::vector<double>{1, 2, 3});
}
