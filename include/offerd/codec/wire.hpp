// Explicit JSON <-> domain codecs for every wire type. Decoders are tolerant of extra keys and
// name the offending field; they fail with errc::bad_json when the text is not JSON and
// errc::invalid_field when the JSON does not fit the schema or the domain rules.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/domain/errors.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/domain/transaction.hpp"

namespace offerd {

// The timestamp and type exactly as a client wrote them (member-data answers with these).
struct transaction_text {
    std::string ts;
    std::string type;
};

// POST /member/offer and POST /member_data bodies. When as_sent is given it receives the
// timestamp and type text as written.
result<transaction> decode_transaction(std::string_view body, transaction_text* as_sent = nullptr);
// Normalized: RFC 3339 UTC timestamp, upper-case type.
std::string encode_transaction(const transaction& t);
// With as_sent, the timestamp and type are written as the client sent them.
void append_transaction(std::string& out, const transaction& t, const transaction_text* as_sent = nullptr);

// member-data's path for serving a history: history_entry_prefix(id) is computed once per
// history, then append_history_entry writes one normalized entry, byte for byte what
// append_transaction writes for the same transaction (the same writer behind both).
std::string history_entry_prefix(std::string_view member_id);
void append_history_entry(std::string& out, std::string_view entry_prefix, micros ts, txn_type type, double points,
                          double revenue);

// GET /member_data/{id} answers. Entries that do not validate are skipped and counted, with
// the first few reasons kept for the log. Fails if the body is not a JSON array.
struct decoded_history {
    std::vector<transaction> items;
    std::size_t skipped = 0;
    std::vector<std::string> skip_reasons;  // at most max_skip_reasons
};
inline constexpr std::size_t max_skip_reasons = 3;
result<decoded_history> decode_history(std::string_view body);

// Prediction request: the 8 features with their contract key names.
std::string encode_features(const member_features& f);
// DAYS_SINCE_LAST_TRANSACTION must be a non-negative integer (3 or 3.0); the rest finite numbers.
result<member_features> decode_features(std::string_view body);

// {"prediction": number}
std::string encode_prediction(double p);
result<double> decode_prediction(std::string_view body);

// {"ats_prediction": number, "resp_prediction": number}
struct offer_request {
    double ats = 0;
    double resp = 0;
};
std::string encode_offer_request(const offer_request& r);
result<offer_request> decode_offer_request(std::string_view body);

// {"offer": "..."}
std::string encode_offer(std::string_view offer);
result<std::string> decode_offer(std::string_view body);

// {"memberId": "...", "offer": "..."}
std::string encode_member_offer(std::string_view member_id, std::string_view offer);

// {"detail": "..."}
std::string encode_detail(std::string_view detail);
// {"detail": "...", "errors": [{"field": "...", "message": "..."}, ...]}: a validation failure.
std::string encode_validation_error(std::string_view detail, std::span<const field_problem> errors);

// A JSON string literal (quotes included) to its value.
result<std::string> decode_json_string(std::string_view literal);

}  // namespace offerd
