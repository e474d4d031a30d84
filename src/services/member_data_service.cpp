// member-data: validates and stores transactions, serves histories.
#include "offerd/codec/wire.hpp"
#include "offerd/orchestrator/idempotency_cache.hpp"
#include "offerd/services/member_store.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

void add_health_route(router& r) {
    r.add(http::verb::get, "/health", [](request_context&) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, R"({"status":"ok"})");
    });
}

std::shared_ptr<router> make_member_data_router(std::shared_ptr<member_store> store) {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    // A POST with an Idempotency-Key already seen (10 min, 100k keys) is answered from memory and
    // not stored again: that is what lets the orchestrator retry a persist.
    auto seen = std::make_shared<idempotency_cache>(std::chrono::minutes(10), 100'000);
    r->add(http::verb::post, "/member_data", [store, seen](request_context& ctx) -> asio::awaitable<response> {
        auto t = decode_transaction(ctx.req.body());
        if (!t) co_return failure_response(t.error());
        std::string body = encode_transaction(*t);
        const auto key_it = ctx.req.find("Idempotency-Key");
        if (key_it == ctx.req.end() || key_it->value().empty()) {
            store->append(*t);
            co_return json_response(http::status::ok, std::move(body));
        }
        const std::uint64_t h = idempotency_cache::hash(body);
        if (auto prior = seen->insert_if_absent(std::string(key_it->value()), {h, 200, body})) {
            if (prior->body_hash != h)
                co_return detail_response(http::status::unprocessable_entity, "Idempotency-Key: already used with a different body");
            co_return json_response(http::status::ok, std::move(prior->body));
        }
        store->append(*t);
        co_return json_response(http::status::ok, std::move(body));
    });
    r->add(http::verb::get, "/member_data/{memberId}", [store](request_context& ctx) -> asio::awaitable<response> {
        std::string body;
        if (!store->history_json(ctx.param, body)) co_return detail_response(http::status::not_found, "Member not found");
        co_return json_response(http::status::ok, std::move(body));
    });
    return r;
}

}  // namespace offerd
