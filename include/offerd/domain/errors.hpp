// Error codes for failures that depend on input or on the outside world, and result<T> to carry them.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace offerd {

enum class errc {
    ok = 0,
    bad_json,              // body is not JSON (400)
    invalid_field,         // schema or domain violation, detail names the field (422)
    body_too_large,        // request body over the limit (413)
    header_too_large,      // request header over the limit (431)
    not_found,             // unknown route or entity (404)
    method_not_allowed,    // known route, wrong method (405)
    overloaded,            // admission control refused the request (503)
    member_busy,           // while shedding: too many of this member's requests already wait their turn (429)
    circuit_open,          // an upstream's circuit breaker is open: fail fast (503)
    writes_pending,        // a member's earlier writes wait for member-data, so its history is not known (503)
    state_unavailable,     // cluster mode: the state store (PostgreSQL) cannot answer now (503)
    idempotency_conflict,  // Idempotency-Key reused with a different body (422)
    deadline_exceeded,     // the request budget ran out before a step could start (504)
    upstream_timeout,      // an upstream call timed out (504)
    upstream_unavailable,  // connect refused, reset, unreachable (504)
    upstream_bad_status,   // upstream answered 5xx or an unexpected status (502)
    upstream_bad_response, // upstream answered something we cannot parse (502)
    internal,              // a bug; never leaks details (500)
};

const std::error_category& offerd_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), offerd_category()}; }

// Stable snake_case name for logs and metrics labels.
const char* errc_name(errc e) noexcept;

// One invalid input: the wire name of the field (a body key, a header name, or "body" for the
// body as a whole) and what is wrong with it, e.g. {"lastTransactionRevenueUsd", "must be >= 0"}.
struct field_problem {
    std::string field;
    std::string message;
    friend bool operator==(const field_problem&, const field_problem&) = default;
};

struct failure {
    errc code = errc::internal;
    std::string detail;
    int retry_after_s = 0;  // > 0: the client may retry after this many seconds (503)
    unsigned upstream_status = 0;  // the upstream's HTTP status, when it answered one
    // invalid_field: every invalid field the decoder found, in wire order, when it reports more
    // than one; detail still names one of them ("field: message").
    std::vector<field_problem> errors{};
};

// A value or a failure. Deliberately small: C++20 has no std::expected.
template <class T>
class result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
    result(failure f) : v_(std::in_place_index<1>, std::move(f)) {}    // NOLINT(google-explicit-constructor)

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const failure& error() const& { return std::get<1>(v_); }
    failure&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, failure> v_;
};

inline failure fail(errc code, std::string detail, int retry_after_s = 0) {
    return failure{code, std::move(detail), retry_after_s};
}

// An invalid_field failure for one or more problems (non-empty): detail is "field: message" of
// problems[first], errors all of them.
failure invalid_fields(std::vector<field_problem> problems, std::size_t first = 0);

}  // namespace offerd

template <>
struct std::is_error_code_enum<offerd::errc> : std::true_type {};
