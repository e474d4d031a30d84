// member-data: validates and stores transactions, serves histories (a route table over history_store).
#include "offerd/codec/wire.hpp"
#include "offerd/services/services.hpp"
#include "offerd/store/history_store.hpp"

namespace offerd {

void add_health_route(router& r) {
    r.add(http::verb::get, "/health", [](request_context&) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, R"({"status":"ok"})");
    });
}

std::shared_ptr<router> make_member_data_router(std::shared_ptr<history_store> store) {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/member_data", [store](request_context& ctx) -> asio::awaitable<response> {
        transaction_text as_sent;
        auto t = decode_transaction(ctx.req.body(), &as_sent);
        if (!t) co_return failure_response(t.error());
        const auto key_it = ctx.req.find("Idempotency-Key");
        std::string key = key_it == ctx.req.end() ? std::string() : std::string(key_it->value());
        transaction txn = std::move(t).value();  // named: g++ 12 mishandles temporaries beside co_await
        auto stored = co_await store->append(std::move(txn), std::move(key), std::move(as_sent));
        if (!stored) co_return detail_response(http::status::service_unavailable, "member-data cannot store the write");
        switch (stored->what) {
        case append_outcome::kind::conflict:
            co_return failure_response(fail(errc::idempotency_conflict, "Idempotency-Key: already used with a different body"));
        case append_outcome::kind::duplicate: {
            response res = json_response(http::status::ok, std::move(stored->body));
            res.set("Idempotent-Replayed", "true");
            co_return res;
        }
        case append_outcome::kind::stored: break;
        case append_outcome::kind::in_progress:  // the stores wait these out; never answered
            co_return failure_response(fail(errc::internal, "in_progress escaped the store"));
        }
        co_return json_response(http::status::ok, std::move(stored->body));
    });
    r->add(http::verb::get, "/member_data/{memberId}", [store](request_context& ctx) -> asio::awaitable<response> {
        std::string body;
        std::string member(ctx.param);
        auto found = co_await store->history_json(std::move(member), body);
        if (!found) co_return detail_response(http::status::service_unavailable, "member-data cannot read its store");
        if (!*found) co_return detail_response(http::status::not_found, "Member not found");
        co_return json_response(http::status::ok, std::move(body));
    });
    return r;
}

}  // namespace offerd
