// Route matching and dispatch.
#include "offerd/net/router.hpp"

#include <exception>

namespace offerd {

void router::add(http::verb method, std::string pattern, handler h) {
    const std::size_t brace = pattern.find('{');
    const bool has_param = brace != std::string::npos;
    routes_.push_back(route{method, has_param ? pattern.substr(0, brace) : pattern, has_param, std::move(h)});
}

asio::awaitable<response> router::dispatch(request_context& ctx) const {
    std::string_view path = ctx.req.target();
    if (const std::size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);

    const route* match = nullptr;
    std::string allow;
    for (const route& r : routes_) {
        bool path_ok = false;
        std::string_view param;
        if (!r.has_param) {
            path_ok = path == r.prefix;
        } else if (path.starts_with(r.prefix) && path.size() > r.prefix.size()) {
            param = path.substr(r.prefix.size());
            path_ok = param.find('/') == std::string_view::npos;
        }
        if (!path_ok) continue;
        if (r.method == ctx.req.method()) {
            match = &r;
            ctx.param = param;
            break;
        }
        allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(r.method));
    }
    if (!match) {
        if (allow.empty()) co_return detail_response(http::status::not_found, "Not Found");
        response res = detail_response(http::status::method_not_allowed, "Method Not Allowed");
        res.set(http::field::allow, allow);
        co_return res;
    }
    std::string what;
    try {
        co_return co_await match->h(ctx);
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    if (on_error) on_error(ctx, what);
    co_return failure_response(fail(errc::internal, {}));
}

}  // namespace offerd
