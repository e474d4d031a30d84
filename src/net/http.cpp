// Responses and the error -> status map.
#include "offerd/net/http.hpp"

#include <algorithm>
#include <random>

#include "offerd/codec/wire.hpp"

namespace offerd {

response json_response(http::status status, std::string body) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

response detail_response(http::status status, std::string_view detail) {
    return json_response(status, encode_detail(detail));
}

http::status status_for(errc e) noexcept {
    switch (e) {
    case errc::ok: return http::status::ok;
    case errc::bad_json: return http::status::bad_request;
    case errc::invalid_field:
    case errc::idempotency_conflict: return http::status::unprocessable_entity;
    case errc::body_too_large: return http::status::payload_too_large;
    case errc::header_too_large: return http::status::request_header_fields_too_large;
    case errc::not_found: return http::status::not_found;
    case errc::method_not_allowed: return http::status::method_not_allowed;
    case errc::overloaded:
    case errc::circuit_open: return http::status::service_unavailable;
    case errc::deadline_exceeded:
    case errc::upstream_timeout:
    case errc::upstream_unavailable: return http::status::gateway_timeout;
    case errc::upstream_bad_status:
    case errc::upstream_bad_response: return http::status::bad_gateway;
    case errc::internal: return http::status::internal_server_error;
    }
    return http::status::internal_server_error;
}

response failure_response(const failure& f) {
    const http::status s = status_for(f.code);
    switch (f.code) {
    case errc::internal: return detail_response(s, "Internal server error");
    case errc::overloaded:
    case errc::circuit_open: {
        response r = detail_response(s, f.code == errc::overloaded ? std::string("Server is overloaded, retry later") : f.detail);
        r.set(http::field::retry_after, std::to_string(std::max(1, f.retry_after_s)));
        return r;
    }
    case errc::deadline_exceeded:
    case errc::upstream_timeout:
    case errc::upstream_unavailable:
    case errc::upstream_bad_status:
    case errc::upstream_bad_response:
        // The detail names the upstream and the kind of fault, never a raw upstream body.
        return detail_response(s, f.detail.empty() ? std::string(errc_name(f.code)) : f.detail);
    default: return detail_response(s, f.detail);
    }
}

std::string new_request_id() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t v = gen();
    std::string id(16, '0');
    for (int i = 15; i >= 0; --i, v >>= 4) id[static_cast<std::size_t>(i)] = hex[v & 15];
    return id;
}

}  // namespace offerd
