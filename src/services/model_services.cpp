// prediction and offer-engine: thin handlers over the pure formulas.
#include <cmath>
#include <cstdint>

#include "offerd/codec/wire.hpp"
#include "offerd/services/services.hpp"
#include "offerd/store/idempotency_cache.hpp"

namespace offerd {

namespace {
handler model_handler(double (*model)(const member_features&) noexcept, double fault_share) {
    const auto faulty = static_cast<std::uint64_t>(fault_share * 1'000'000.0);
    return [model, faulty](request_context& ctx) -> asio::awaitable<response> {
        if (faulty > 0 && idempotency_cache::hash(ctx.req.body()) % 1'000'000 < faulty)  // stable: FNV-1a
            co_return detail_response(http::status::internal_server_error, "Injected fault (--prediction-fault-share)");
        auto f = decode_features(ctx.req.body());
        if (!f) co_return failure_response(f.error());
        const double p = model(*f);
        if (!std::isfinite(p)) {
            failure bad = invalid_fields({{"body", "prediction is not finite for these values"}});
            bad.detail = "features: prediction is not finite for these values";
            co_return failure_response(bad);
        }
        co_return json_response(http::status::ok, encode_prediction(p));
    };
}
}  // namespace

std::shared_ptr<router> make_prediction_router(double fault_share) {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/ml/ats/predict", model_handler(&predict_ats, fault_share));
    r->add(http::verb::post, "/ml/resp/predict", model_handler(&predict_resp, fault_share));
    return r;
}

std::shared_ptr<router> make_offer_engine_router() {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/offer/assign", [](request_context& ctx) -> asio::awaitable<response> {
        auto o = decode_offer_request(ctx.req.body());
        if (!o) co_return failure_response(o.error());
        co_return json_response(http::status::ok, encode_offer(assign_offer(o->ats, o->resp)));
    });
    return r;
}

}  // namespace offerd
