// prediction and offer-engine: thin handlers over the pure formulas.
#include <cmath>

#include "offerd/codec/wire.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

namespace {
handler model_handler(double (*model)(const member_features&) noexcept) {
    return [model](request_context& ctx) -> asio::awaitable<response> {
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

std::shared_ptr<router> make_prediction_router() {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/ml/ats/predict", model_handler(&predict_ats));
    r->add(http::verb::post, "/ml/resp/predict", model_handler(&predict_resp));
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
