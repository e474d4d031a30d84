// The offerd error category.
#include "offerd/domain/errors.hpp"

namespace offerd {

const char* errc_name(errc e) noexcept {
    switch (e) {
    case errc::ok: return "ok";
    case errc::bad_json: return "bad_json";
    case errc::invalid_field: return "invalid_field";
    case errc::body_too_large: return "body_too_large";
    case errc::header_too_large: return "header_too_large";
    case errc::not_found: return "not_found";
    case errc::method_not_allowed: return "method_not_allowed";
    case errc::overloaded: return "overloaded";
    case errc::circuit_open: return "circuit_open";
    case errc::writes_pending: return "writes_pending";
    case errc::member_busy: return "member_busy";
    case errc::state_unavailable: return "state_unavailable";
    case errc::idempotency_conflict: return "idempotency_conflict";
    case errc::deadline_exceeded: return "deadline_exceeded";
    case errc::upstream_timeout: return "upstream_timeout";
    case errc::upstream_unavailable: return "upstream_unavailable";
    case errc::upstream_bad_status: return "upstream_bad_status";
    case errc::upstream_bad_response: return "upstream_bad_response";
    case errc::internal: return "internal";
    }
    return "unknown";
}

namespace {
class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "offerd"; }
    std::string message(int ev) const override { return errc_name(static_cast<errc>(ev)); }
};
}  // namespace

const std::error_category& offerd_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace offerd

namespace offerd {

failure invalid_fields(std::vector<field_problem> problems, std::size_t first) {
    failure f{errc::invalid_field, problems[first].field + ": " + problems[first].message};
    f.errors = std::move(problems);
    return f;
}

}  // namespace offerd
