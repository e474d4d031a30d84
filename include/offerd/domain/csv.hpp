// RFC 4180 CSV reading (quotes, CRLF, UTF-8 BOM) and mapping rows to transactions by header name.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/domain/errors.hpp"
#include "offerd/domain/transaction.hpp"

namespace offerd {

struct csv_record {
    std::size_t line = 0;  // 1-based line where the record starts
    std::vector<std::string> fields;
};

// Reads records from a whole-file buffer (the buffer must outlive the reader).
// A quoted field may contain commas, doubled quotes and line breaks. A stray quote inside an
// unquoted field or an unterminated quote is an error naming the line; reading stops there.
class csv_reader {
public:
    explicit csv_reader(std::string_view text);
    // False at end of input. Blank lines are skipped. On a syntax error returns false and sets error.
    bool next(csv_record& out, failure& error);

private:
    std::string_view text_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
};

// The same reader over input that arrives in pieces (a file read in chunks, a pipe), holding only
// the unread part: feed() bytes, finish() at end of input, and next() gives each record once it is
// complete. A record longer than max_record_bytes is an error (memory stays bounded).
class csv_stream_reader {
public:
    enum class status { record, need_more, end, error };
    explicit csv_stream_reader(std::size_t max_record_bytes = 1u << 20);
    void feed(std::string_view bytes);
    void finish() noexcept { final_ = true; }
    // need_more: feed more (or finish). After an error every call returns error again.
    status next(csv_record& out, failure& error);
    // The raw bytes the last `record` took, blank lines before it included (valid until feed()).
    std::string_view consumed() const noexcept { return consumed_; }

private:
    std::string buffer_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
    std::size_t max_record_bytes_;
    bool final_ = false;
    bool started_ = false;  // the BOM check has been made
    bool failed_ = false;
    failure error_;
    std::string_view consumed_;
};

// Column positions of the five transaction fields. Header names are matched case-insensitively,
// so the CSV's `lastTransactionRevenueUSD` maps to `lastTransactionRevenueUsd`; order is free and
// extra columns are ignored. Fails naming the missing columns.
struct csv_columns {
    std::array<std::size_t, 5> index{};  // member_id, ts, type, points, revenue
    std::size_t width = 0;               // number of header columns
};
result<csv_columns> map_csv_header(const std::vector<std::string>& header);

// Validates one record; the detail names the field and the reason.
result<transaction> csv_row_to_transaction(const csv_record& rec, const csv_columns& cols);

// Strict decimal number (optional sign, digits, fraction, exponent; surrounding blanks allowed).
// Rejects empty text, trailing garbage, inf and nan.
bool parse_number(std::string_view text, double& out) noexcept;

}  // namespace offerd
