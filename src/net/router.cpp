// Route matching and dispatch.
#include "offerd/net/router.hpp"

#include <exception>

#include "offerd/obs/prometheus.hpp"

namespace offerd {

void router::add(http::verb method, std::string pattern, handler h) {
    const std::size_t brace = pattern.find('{');
    const bool has_param = brace != std::string::npos;
    std::string prefix = has_param ? pattern.substr(0, brace) : pattern;
    routes_.push_back(route{method, std::move(pattern), std::move(prefix), has_param, std::move(h)});
}

asio::awaitable<response> router::dispatch(request_context& ctx) const {
    const auto started = std::chrono::steady_clock::now();
    std::string_view path = ctx.req.target();
    if (const std::size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);

    // HEAD is answered by the GET route (the session sends the header only), unless a route
    // takes HEAD itself.
    const bool head = ctx.req.method() == http::verb::head;
    const route* match = nullptr;
    const route* get_for_head = nullptr;
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
        if (head && r.method == http::verb::get && !get_for_head) {
            get_for_head = &r;
            ctx.param = param;
        }
        allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(r.method));
        if (r.method == http::verb::get) allow += ", HEAD";
    }
    if (!match) match = get_for_head;
    if (!match) {
        if (allow.empty()) {
            count(*unmatched_, 404, started);
            co_return detail_response(http::status::not_found, "Not Found");
        }
        response res = detail_response(http::status::method_not_allowed, "Method Not Allowed");
        res.set(http::field::allow, allow);
        count(*unmatched_, 405, started);
        co_return res;
    }
    std::string what;
    try {
        if (guard)
            if (auto denied = guard(ctx)) {
                count(*match->stats, denied->result_int(), started);
                co_return std::move(*denied);
            }
        response res = co_await match->h(ctx);
        count(*match->stats, res.result_int(), started);
        co_return res;
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    if (on_error) on_error(ctx, what);
    count(*match->stats, 500, started);
    co_return failure_response(fail(errc::internal, {}));
}

std::vector<router::route_info> router::routes() const {
    std::vector<route_info> out;
    out.reserve(routes_.size());
    for (const route& r : routes_) out.push_back({r.method, r.pattern});
    return out;
}

void router::count(route_stats& s, unsigned status, std::chrono::steady_clock::time_point started) noexcept {
    if (status < 100 || status >= 600) return;
    s.counts[status - 100].fetch_add(1, std::memory_order_relaxed);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    s.durations[status / 100 - 1].observe_us(took.count());
}

template <class Emit>
void router::for_each_route(std::string_view listener, Emit&& emit) const {
    // listener, method and route template: the labels both request families share.
    const auto labels = [&](std::string_view method, std::string_view route_name) {
        return "listener=\"" + label_value(listener) + "\",method=\"" + std::string(method) + "\",route=\"" + label_value(route_name) + "\"";
    };
    for (const route& r : routes_) emit(*r.stats, labels(http::to_string(r.method), r.pattern));
    emit(*unmatched_, labels("any", "other"));
}

void router::write_request_counts(std::string& out, std::string_view listener) const {
    for_each_route(listener, [&](const route_stats& s, const std::string& route_labels) {
        for (std::size_t i = 0; i < s.counts.size(); ++i) {
            const std::uint64_t n = s.counts[i].load(std::memory_order_relaxed);
            if (n == 0) continue;
            write_sample(out, "offerd_http_requests_total", route_labels + ",status=\"" + std::to_string(i + 100) + "\"", static_cast<double>(n));
        }
    });
}

void router::write_request_durations(std::string& out, std::string_view listener) const {
    static constexpr std::array<std::string_view, status_classes> class_names{"1xx", "2xx", "3xx", "4xx", "5xx"};
    for_each_route(listener, [&](const route_stats& s, const std::string& route_labels) {
        for (std::size_t i = 0; i < status_classes; ++i) {
            if (s.durations[i].count() == 0) continue;
            s.durations[i].write(out, "offerd_http_server_request_duration_seconds",
                                 route_labels + ",status_class=\"" + std::string(class_names[i]) + "\"");
        }
    });
}

}  // namespace offerd
