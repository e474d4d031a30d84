// Exactly-once counting over real listeners: member-data stores every write but loses the answer
// of every 10th, while two members get 50 concurrent requests each.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/net/http_client.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
const micros fixed_now = parse_timestamp("2024-06-03T00:00:00Z").value();

// member-data's contract over a map, de-duplicating by Idempotency-Key; `lose(n)` says whether the
// n-th write's answer is replaced by a 503 after it was stored.
class lossy_member_data {
public:
    explicit lossy_member_data(std::function<bool(int)> lose)
        : lose_(std::move(lose)), server_([this](const request& r) { return serve(r); }) {}
    std::string url() const { return server_.url(); }
    std::vector<transaction> rows(const std::string& m) const {
        std::lock_guard lock(mutex_);
        auto it = rows_.find(m);
        return it == rows_.end() ? std::vector<transaction>{} : it->second;
    }

private:
    response serve(const request& r) {
        std::lock_guard lock(mutex_);
        if (r.method() == http::verb::get) {
            const std::string target(r.target());
            const auto it = rows_.find(target.substr(target.rfind('/') + 1));
            if (it == rows_.end()) return detail_response(http::status::not_found, "Member not found");
            std::string body = "[";
            for (const auto& t : it->second) {
                if (body.size() > 1) body += ',';
                body += encode_transaction(t);
            }
            body += ']';
            return json_response(http::status::ok, std::move(body));
        }
        auto t = decode_transaction(r.body());
        if (!t) return failure_response(t.error());
        if (keys_.insert(std::string(r["Idempotency-Key"])).second) rows_[t->member_id].push_back(*t);
        if (lose_(++writes_)) return detail_response(http::status::service_unavailable, "answer lost");
        return json_response(http::status::ok, std::string(r.body()));
    }
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<transaction>> rows_;
    std::set<std::string> keys_;
    int writes_ = 0;
    std::function<bool(int)> lose_;
    fake_upstream server_;
};
}  // namespace

TEST_CASE("with every 10th write's answer lost, no decision counts a transaction twice or misses one", "[component]") {
    lossy_member_data md([](int n) { return n % 10 == 0; });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.orchestrator.now = fixed_now;
        c.orchestrator.retry.max_attempts = 1;  // the lost answer is not retried at once: it goes to the outbox
        c.orchestrator.outbox.retry_min = std::chrono::milliseconds(5);
        c.orchestrator.outbox.retry_max = std::chrono::milliseconds(20);
    });
    const auto port = app.port(role::orchestrator);
    // 2 members x 50 connections x 5 requests, every request of a member with its own points.
    constexpr int per_member = 250, connections = 50;
    std::atomic<int> ok{0};
    {
        asio::io_context ctx(1);
        for (int m = 0; m < 2; ++m)
            for (int c = 0; c < connections; ++c)
                asio::co_spawn(ctx, [&, m, c]() -> asio::awaitable<void> {
                    http_client client(ctx.get_executor(), url{"127.0.0.1", port, ""}, client_limits{});
                    for (int i = c; i < per_member; i += connections) {
                        const std::string body = txn_body(m ? "LOSSB" : "LOSSA", "2024-06-01T10:00:00Z", i % 3 ? "BUY" : "GIFT", i, 1);
                        auto res = co_await client.send(http::verb::post, "/member/offer", body,
                                                        call_options{{}, deadline::after(std::chrono::seconds(20)), {}, {}});
                        if (res && res->result_int() == 200) ++ok;
                    }
                }, asio::detached);
        ctx.run_for(std::chrono::seconds(60));
    }
    CHECK(ok == 2 * per_member);
    // Everything accepted reaches member-data once (the outbox drains in the background).
    for (int i = 0; i < 500 && md.rows("LOSSA").size() + md.rows("LOSSB").size() < 2 * per_member; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::map<std::string, std::vector<transaction>> stored{{"LOSSA", md.rows("LOSSA")}, {"LOSSB", md.rows("LOSSB")}};
    CHECK(stored["LOSSA"].size() == per_member);
    CHECK(stored["LOSSB"].size() == per_member);
    std::size_t wrong = 0, checked = 0;
    for (const auto& e : app.events("offer")) {
        const auto& s = stored[std::string(e.at("memberId").as_string())];
        const auto n = e.at("history_len").to_number<std::size_t>();
        const auto current = decode_transaction(json::serialize(e.at("transaction"))).value();
        ++checked;
        if (n >= s.size() || !(s[n] == current) ||
            e.at("features") != json::parse(encode_features(compute_features(std::span(s).first(n), current, fixed_now))))
            ++wrong;
    }
    CHECK(checked == 2 * per_member);
    CHECK(wrong == 0);
}
