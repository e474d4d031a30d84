// CSV reading. Hand-rolled because neither Boost nor Debian's standard packages offer an
// RFC 4180 reader, and what we need (line numbers, BOM, CRLF, quoted line breaks) is small.
#include "offerd/domain/csv.hpp"

#include <charconv>
#include <cmath>

namespace offerd {

csv_reader::csv_reader(std::string_view text) : text_(text) {
    if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
}

bool csv_reader::next(csv_record& out, failure& error) {
    out.fields.clear();
    // Skip blank lines (a record of one empty field is not a row).
    while (pos_ < text_.size() && (text_[pos_] == '\n' || text_[pos_] == '\r')) {
        if (text_[pos_] == '\n') ++line_;
        ++pos_;
    }
    if (pos_ >= text_.size()) return false;
    out.line = line_;
    std::string field;
    for (;;) {
        field.clear();
        if (pos_ < text_.size() && text_[pos_] == '"') {
            ++pos_;
            for (;;) {
                if (pos_ >= text_.size()) {
                    error = fail(errc::invalid_field, "line " + std::to_string(out.line) + ": unterminated quoted field");
                    pos_ = text_.size();
                    return false;
                }
                const char c = text_[pos_++];
                if (c == '"') {
                    if (pos_ < text_.size() && text_[pos_] == '"') {
                        field += '"';
                        ++pos_;
                    } else {
                        break;
                    }
                } else {
                    if (c == '\n') ++line_;
                    field += c;
                }
            }
            if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') {
                error = fail(errc::invalid_field, "line " + std::to_string(line_) + ": unexpected character after closing quote");
                pos_ = text_.size();
                return false;
            }
        } else {
            while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') {
                if (text_[pos_] == '"') {
                    error = fail(errc::invalid_field, "line " + std::to_string(line_) + ": quote inside an unquoted field");
                    pos_ = text_.size();
                    return false;
                }
                field += text_[pos_++];
            }
        }
        out.fields.push_back(field);
        if (pos_ >= text_.size()) return true;
        const char c = text_[pos_++];
        if (c == ',') continue;
        if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
        ++line_;
        return true;
    }
}

namespace {
bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

constexpr std::array<std::string_view, 5> column_names{field::member_id, field::ts, field::type, field::points,
                                                       field::revenue};
}  // namespace

bool parse_number(std::string_view text, double& out) noexcept {
    text = trim(text);
    if (!text.empty() && text.front() == '+') {
        text.remove_prefix(1);
        if (!text.empty() && text.front() == '-') return false;  // one sign at most
    }
    if (text.empty()) return false;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size() && std::isfinite(out);
}

result<csv_columns> map_csv_header(const std::vector<std::string>& header) {
    csv_columns cols;
    cols.width = header.size();
    std::string missing;
    for (std::size_t k = 0; k < column_names.size(); ++k) {
        bool found = false;
        for (std::size_t i = 0; i < header.size() && !found; ++i) {
            if (iequal(trim(header[i]), column_names[k])) {
                cols.index[k] = i;
                found = true;
            }
        }
        if (!found) missing += (missing.empty() ? "" : ", ") + std::string(column_names[k]);
    }
    if (!missing.empty()) return fail(errc::invalid_field, "CSV header is missing column(s): " + missing);
    return cols;
}

result<transaction> csv_row_to_transaction(const csv_record& rec, const csv_columns& cols) {
    if (rec.fields.size() != cols.width)
        return fail(errc::invalid_field, "expected " + std::to_string(cols.width) + " fields, got " +
                                             std::to_string(rec.fields.size()));
    const auto get = [&](std::size_t k) { return trim(rec.fields[cols.index[k]]); };
    double points = 0, revenue = 0;
    const bool points_ok = parse_number(get(3), points);
    const bool revenue_ok = parse_number(get(4), revenue);
    // Report the first offending field in column order: the text fields (validated with
    // neutral numbers), then points, then revenue (its range is checked by make_transaction).
    if (auto t = make_transaction(get(0), get(1), get(2), 0.0, 0.0); !t) return t;
    if (!points_ok) return fail(errc::invalid_field, std::string(field::points) + ": not a finite number");
    if (!revenue_ok) return fail(errc::invalid_field, std::string(field::revenue) + ": not a finite number");
    return make_transaction(get(0), get(1), get(2), points, revenue);
}

}  // namespace offerd
