// Responses and the error -> status map.
#include "offerd/net/http.hpp"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <cstdio>
#include <limits>
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

// Hand-rolled on purpose: Beast's serializer walks a generic buffers_cat_view over every field on
// each write step, which the profile put at ~6% of all CPU for our small messages; formatting
// the same header bytes is a few appends, and header + body go out in one gathered write.
namespace {
template <bool is_request>
void append_fields(std::string& out, const http::message<is_request, http::string_body>& m) {
    for (const auto& f : m) {
        out += f.name_string();
        out += ": ";
        out += f.value();
        out += "\r\n";
    }
    out += "\r\n";
}
void append_version(std::string& out, unsigned version) {
    out += "HTTP/";
    out += static_cast<char>('0' + version / 10);
    out += '.';
    out += static_cast<char>('0' + version % 10);
}
}  // namespace

void append_wire_header(std::string& out, const request& req) {
    out.reserve(out.size() + 256);
    out += req.method_string();
    out += ' ';
    out += req.target();
    out += ' ';
    append_version(out, req.version());
    out += "\r\n";
    append_fields(out, req);
}

void append_wire_header(std::string& out, const response& res) {
    out.reserve(out.size() + 256);
    append_version(out, res.version());
    out += ' ';
    out += std::to_string(res.result_int());
    out += ' ';
    out += res.reason();
    out += "\r\n";
    append_fields(out, res);
}

std::string_view http_date(std::chrono::system_clock::time_point now) noexcept {
    struct cache {
        std::int64_t second = std::numeric_limits<std::int64_t>::min();
        std::array<char, 30> text{};  // 29 characters and the terminating NUL snprintf writes
    };
    thread_local cache c;
    const auto second = std::chrono::floor<std::chrono::seconds>(now).time_since_epoch().count();
    if (second != c.second) {
        static constexpr const char* days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};  // 1970-01-01 was a Thursday
        static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        const auto day = std::chrono::floor<std::chrono::days>(std::chrono::sys_seconds(std::chrono::seconds(second)));
        const std::chrono::year_month_day ymd(day);
        const std::chrono::hh_mm_ss hms(std::chrono::sys_seconds(std::chrono::seconds(second)) - day);
        const auto weekday = ((day.time_since_epoch().count() % 7) + 7) % 7;
        std::snprintf(c.text.data(), c.text.size(), "%s, %02u %s %04d %02d:%02d:%02d GMT",
                      days[weekday], static_cast<unsigned>(ymd.day()), months[static_cast<unsigned>(ymd.month()) - 1],
                      static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                      static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
        c.second = second;
    }
    return {c.text.data(), c.text.size() - 1};
}

http::status transfer_coding_verdict(std::string_view value) noexcept {
    int chunked = 0, others = 0;
    bool last_chunked = false;
    for (std::size_t at = 0; at <= value.size();) {
        std::size_t end = value.find(',', at);
        if (end == std::string_view::npos) end = value.size();
        std::string_view coding = value.substr(at, end - at);
        while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
        while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
        if (!coding.empty()) {  // empty list elements are allowed and ignored (RFC 9110 5.6.1)
            last_chunked = beast::iequals(coding, "chunked");
            (last_chunked ? chunked : others) += 1;
        }
        at = end + 1;
    }
    if (!last_chunked || chunked > 1) return http::status::bad_request;
    return others > 0 ? http::status::not_implemented : http::status::ok;
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
    case errc::member_busy: return http::status::too_many_requests;
    case errc::overloaded:
    case errc::writes_pending:
    case errc::state_unavailable:
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
    case errc::member_busy:
    case errc::writes_pending:
    case errc::state_unavailable:
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
    case errc::invalid_field:
    case errc::idempotency_conflict: {
        if (!f.errors.empty()) return json_response(s, encode_validation_error(f.detail, f.errors));
        // A failure made from its detail alone names its field by the "field: message" convention.
        const std::size_t colon = f.detail.find(": ");
        const field_problem one = colon == std::string::npos ? field_problem{"body", f.detail}
                                                             : field_problem{f.detail.substr(0, colon), f.detail.substr(colon + 2)};
        return json_response(s, encode_validation_error(f.detail, std::span(&one, 1)));
    }
    default: return detail_response(s, f.detail);
    }
}

namespace {
bool is_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}
bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }
}  // namespace

trace_context parse_traceparent(std::string_view h) {
    // version "-" trace-id "-" parent-id "-" flags; future versions may append fields.
    if (h.size() >= 55 && h[2] == '-' && h[35] == '-' && h[52] == '-' && (h.size() == 55 || h[55] == '-')) {
        const auto version = h.substr(0, 2), trace = h.substr(3, 32), parent = h.substr(36, 16), flags = h.substr(53, 2);
        if (is_hex(version) && version != "ff" && !(version == "00" && h.size() != 55) && is_hex(trace) &&
            !all_zero(trace) && is_hex(parent) && !all_zero(parent) && is_hex(flags))
            return trace_context{std::string(trace), std::string(flags), new_request_id(), std::string(parent)};
    }
    return trace_context{new_request_id() + new_request_id(), "01", new_request_id(), {}};
}

std::string child_traceparent(const trace_context& t) {
    return "00-" + t.trace_id + "-" + (t.span_id.empty() ? new_request_id() : t.span_id) + "-" + t.flags;
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
