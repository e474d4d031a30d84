// Unit tests for the CSV reader, header mapping, row validation and number parsing.
#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/domain/csv.hpp"

using namespace offerd;

namespace {

using fields = std::vector<std::string>;

struct read_result {
    std::vector<csv_record> records;
    failure error{errc::ok, ""};
};

read_result read_all(std::string_view text) {
    read_result out;
    csv_reader reader(text);
    csv_record rec;
    while (reader.next(rec, out.error)) out.records.push_back(rec);
    return out;
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, std::string_view prefix) { return std::string_view(s).starts_with(prefix); }

const fields standard_header{"memberId", "lastTransactionUtcTs", "lastTransactionType", "lastTransactionPointsBought",
                             "lastTransactionRevenueUSD"};

csv_columns standard_columns() {
    const auto cols = map_csv_header(standard_header);
    REQUIRE(cols.has_value());
    return *cols;
}

csv_record row(fields f, std::size_t line = 2) { return csv_record{line, std::move(f)}; }

}  // namespace

// ---- csv_reader -----------------------------------------------------------------------------

TEST_CASE("The reader splits plain records into fields", "[unit]") {
    const auto r = read_all("a,b,c\n1,2,3\n");
    CHECK(r.error.code == errc::ok);
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0].fields == fields{"a", "b", "c"});
    CHECK(r.records[1].fields == fields{"1", "2", "3"});
}

TEST_CASE("The reader reads a last record without a trailing newline", "[unit]") {
    const auto r = read_all("a,b\n1,2");
    CHECK(r.error.code == errc::ok);
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[1].fields == fields{"1", "2"});
}

TEST_CASE("Empty input has no records and no error", "[unit]") {
    const auto r = read_all("");
    CHECK(r.records.empty());
    CHECK(r.error.code == errc::ok);
}

TEST_CASE("A quoted field keeps embedded commas", "[unit]") {
    const auto r = read_all("\"a,b\",c\n");
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].fields == fields{"a,b", "c"});
}

TEST_CASE("A doubled quote inside a quoted field is one quote", "[unit]") {
    const auto r = read_all("\"say \"\"hi\"\"\",\"\"\"\"\n");
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].fields == fields{"say \"hi\"", "\""});
}

TEST_CASE("A quoted field keeps embedded line breaks", "[unit]") {
    const auto r = read_all("id,note\n1,\"line one\nline two\"\n2,x\n");
    CHECK(r.error.code == errc::ok);
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[1].fields == fields{"1", "line one\nline two"});
    CHECK(r.records[2].fields == fields{"2", "x"});
}

TEST_CASE("Records carry the line they start on, counting line breaks inside quotes", "[unit]") {
    const auto r = read_all("h1,h2\n1,\"a\nb\nc\"\n2,x\n");
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[0].line == 1);
    CHECK(r.records[1].line == 2);
    CHECK(r.records[2].line == 5);
}

TEST_CASE("Empty fields, including a trailing one and an empty quoted one, are kept", "[unit]") {
    const auto r = read_all("a,,\"\",\n");
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].fields == fields{"a", "", "", ""});
}

TEST_CASE("CRLF line endings do not leak carriage returns into fields", "[unit]") {
    const auto r = read_all("a,b\r\n1,\"2\"\r\n3,4\r\n");
    CHECK(r.error.code == errc::ok);
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[0].fields == fields{"a", "b"});
    CHECK(r.records[1].fields == fields{"1", "2"});
    CHECK(r.records[2].fields == fields{"3", "4"});
    CHECK(r.records[2].line == 3);
}

TEST_CASE("A UTF-8 byte order mark before the header is skipped", "[unit]") {
    const auto r = read_all("\xEF\xBB\xBFmemberId,x\nM1,1\n");
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0].fields == fields{"memberId", "x"});
    CHECK(r.records[0].line == 1);
}

TEST_CASE("Blank lines are skipped and later records keep their physical line numbers", "[unit]") {
    const auto r = read_all("\na,b\n\n\r\n1,2\n\n");
    CHECK(r.error.code == errc::ok);
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0].fields == fields{"a", "b"});
    CHECK(r.records[0].line == 2);
    CHECK(r.records[1].fields == fields{"1", "2"});
    CHECK(r.records[1].line == 5);
}

TEST_CASE("An unterminated quote is an error naming the line where the record starts", "[unit]") {
    const auto r = read_all("a,b\n1,\"open\nstill open\n");
    REQUIRE(r.records.size() == 1);
    CHECK(r.error.code == errc::invalid_field);
    CHECK(contains(r.error.detail, "line 2"));
}

TEST_CASE("A quote inside an unquoted field is an error naming the line", "[unit]") {
    const auto r = read_all("a,b\nc,d\n1,x\"y\n4,5\n");
    REQUIRE(r.records.size() == 2);
    CHECK(r.error.code == errc::invalid_field);
    CHECK(contains(r.error.detail, "line 3"));
}

TEST_CASE("Text after a closing quote is an error", "[unit]") {
    const auto r = read_all("\"a\"b,c\n");
    CHECK(r.records.empty());
    CHECK(r.error.code == errc::invalid_field);
    CHECK(contains(r.error.detail, "line 1"));
}

TEST_CASE("Reading stops after a syntax error", "[unit]") {
    csv_reader reader("1,\"open\n");
    csv_record rec;
    failure error{errc::ok, ""};
    CHECK_FALSE(reader.next(rec, error));
    REQUIRE(error.code == errc::invalid_field);
    failure again{errc::ok, ""};
    CHECK_FALSE(reader.next(rec, again));
}

// ---- map_csv_header -------------------------------------------------------------------------

TEST_CASE("The standard header maps each field to its column", "[unit]") {
    const auto cols = map_csv_header(standard_header);
    REQUIRE(cols.has_value());
    CHECK(cols->index == std::array<std::size_t, 5>{0, 1, 2, 3, 4});
    CHECK(cols->width == 5);
}

TEST_CASE("Header names match case-insensitively", "[unit]") {
    const auto cols = map_csv_header(fields{"MEMBERID", "lasttransactionutcts", "LastTransactionType",
                                            "LASTTRANSACTIONPOINTSBOUGHT", "lastTransactionRevenueUsd"});
    REQUIRE(cols.has_value());
    CHECK(cols->index == std::array<std::size_t, 5>{0, 1, 2, 3, 4});
}

TEST_CASE("Header columns may come in any order with extra columns", "[unit]") {
    const auto cols = map_csv_header(fields{"note", "lastTransactionRevenueUSD", "lastTransactionType", "memberId",
                                            "channel", "lastTransactionPointsBought", "lastTransactionUtcTs"});
    REQUIRE(cols.has_value());
    // member_id, ts, type, points, revenue
    CHECK(cols->index == std::array<std::size_t, 5>{3, 6, 2, 5, 1});
    CHECK(cols->width == 7);
}

TEST_CASE("A header missing columns is rejected naming each missing column", "[unit]") {
    const auto cols = map_csv_header(fields{"memberId", "lastTransactionUtcTs", "lastTransactionRevenueUSD"});
    REQUIRE_FALSE(cols.has_value());
    CHECK(cols.error().code == errc::invalid_field);
    CHECK(contains(cols.error().detail, "lastTransactionType"));
    CHECK(contains(cols.error().detail, "lastTransactionPointsBought"));
    CHECK_FALSE(contains(cols.error().detail, "memberId"));
    CHECK_FALSE(contains(cols.error().detail, "lastTransactionUtcTs"));
}

TEST_CASE("An empty header is missing all five columns", "[unit]") {
    const auto cols = map_csv_header(fields{});
    REQUIRE_FALSE(cols.has_value());
    for (const char* name : {"memberId", "lastTransactionUtcTs", "lastTransactionType", "lastTransactionPointsBought",
                             "lastTransactionRevenueUsd"}) {
        INFO(name);
        CHECK(contains(cols.error().detail, name));
    }
}

// ---- csv_row_to_transaction -----------------------------------------------------------------

TEST_CASE("A valid row becomes a transaction", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M100001", "2024-03-01 12:00:00", "buy", "120", "12.50"}),
                                          standard_columns());
    REQUIRE(t.has_value());
    CHECK(t->member_id == "M100001");
    CHECK(t->ts == (1704067200LL + 60LL * 86400 + 12LL * 3600) * micros_per_second);
    CHECK(t->type == txn_type::buy);
    CHECK(t->points == 120);
    CHECK(t->revenue == 12.5);
}

TEST_CASE("A redeem row with negative points and zero revenue is valid", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "REDEEM", "-300", "0.00"}),
                                          standard_columns());
    REQUIRE(t.has_value());
    CHECK(t->type == txn_type::redeem);
    CHECK(t->points == -300);
    CHECK(t->revenue == 0);
}

TEST_CASE("A row is read through the header's column positions", "[unit]") {
    const auto cols = map_csv_header(fields{"lastTransactionRevenueUSD", "extra", "lastTransactionType", "memberId",
                                            "lastTransactionPointsBought", "lastTransactionUtcTs"});
    REQUIRE(cols.has_value());
    const auto t = csv_row_to_transaction(row({"7.25", "ignored", "GIFT", "M9", "75", "2024-03-01T12:00:00Z"}), *cols);
    REQUIRE(t.has_value());
    CHECK(t->member_id == "M9");
    CHECK(t->type == txn_type::gift);
    CHECK(t->points == 75);
    CHECK(t->revenue == 7.25);
}

TEST_CASE("A row with the wrong number of fields is rejected with both counts", "[unit]") {
    const auto cols = standard_columns();
    const auto few = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy"}), cols);
    REQUIRE_FALSE(few.has_value());
    CHECK(few.error().code == errc::invalid_field);
    CHECK(contains(few.error().detail, "5"));
    CHECK(contains(few.error().detail, "3"));
    const auto many = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy", "1", "1", "x"}), cols);
    REQUIRE_FALSE(many.has_value());
    CHECK(contains(many.error().detail, "6"));
}

TEST_CASE("A row with a bad number names the points field", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy", "abc", "1.00"}),
                                          standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == errc::invalid_field);
    CHECK(starts_with(t.error().detail, "lastTransactionPointsBought: "));
}

TEST_CASE("A row with a bad revenue number names the revenue field", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy", "10", "12,5"}),
                                          standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "lastTransactionRevenueUsd: "));
}

TEST_CASE("A row with a bad type and a bad number names the type, which comes first", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "refund", "abc", "x"}),
                                          standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "lastTransactionType: "));
}

TEST_CASE("A row with a bad timestamp and bad numbers names the timestamp", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "not-a-date", "buy", "abc", "x"}), standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "lastTransactionUtcTs: "));
}

TEST_CASE("A row with an empty member id names the memberId field", "[unit]") {
    const auto t = csv_row_to_transaction(row({"", "2024-03-01T12:00:00Z", "buy", "1", "1"}), standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "memberId: "));
}

TEST_CASE("A row with unparsable points and negative revenue names the points field, which comes first",
          "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy", "abc", "-12.50"}),
                                          standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "lastTransactionPointsBought: "));
}

TEST_CASE("A row with negative revenue names the revenue field", "[unit]") {
    const auto t = csv_row_to_transaction(row({"M1", "2024-03-01T12:00:00Z", "buy", "10", "-12.50"}),
                                          standard_columns());
    REQUIRE_FALSE(t.has_value());
    CHECK(starts_with(t.error().detail, "lastTransactionRevenueUsd: "));
}

// ---- parse_number ---------------------------------------------------------------------------

TEST_CASE("parse_number reads decimal numbers with sign, fraction and exponent", "[unit]") {
    struct sample {
        const char* text;
        double value;
    };
    for (const auto& [text, value] : {sample{"0", 0}, sample{"12", 12}, sample{"-3.5", -3.5}, sample{"+4", 4},
                                      sample{"0.25", 0.25}, sample{"1e3", 1000}, sample{"2.5E-1", 0.25},
                                      sample{"-0.01", -0.01}, sample{"007", 7}}) {
        INFO(text);
        double out = -999;
        CHECK(parse_number(text, out));
        CHECK(out == value);
    }
}

TEST_CASE("parse_number allows surrounding blanks", "[unit]") {
    double out = 0;
    CHECK(parse_number("  42.5 ", out));
    CHECK(out == 42.5);
    CHECK(parse_number("\t-1\t", out));
    CHECK(out == -1);
}

TEST_CASE("parse_number rejects empty text, garbage, inf and nan", "[unit]") {
    for (const char* text : {"", " ", "+", "-", "abc", "12abc", "1.2.3", "12,5", "1 2", "inf", "-inf", "nan",
                             "infinity", "1e999", "0x10", "--5", "$5"}) {
        INFO("'" << text << "'");
        double out = 0;
        CHECK_FALSE(parse_number(text, out));
    }
}

TEST_CASE("parse_number rejects a number with two signs", "[unit]") {
    for (const char* text : {"+-5", "+-0.5"}) {
        INFO("'" << text << "'");
        double out = 0;
        CHECK_FALSE(parse_number(text, out));
    }
}

// ---- csv_stream_reader ----------------------------------------------------------------------

namespace {

// Feeds text in pieces of `piece` bytes, collecting records and the raw bytes each took.
read_result read_in_pieces(std::string_view text, std::size_t piece, std::string* raw = nullptr) {
    read_result out;
    csv_stream_reader reader;
    std::size_t at = 0;
    csv_record rec;
    for (;;) {
        const auto st = reader.next(rec, out.error);
        if (st == csv_stream_reader::status::record) {
            out.records.push_back(rec);
            if (raw) *raw += reader.consumed();
        } else if (st == csv_stream_reader::status::need_more) {
            if (at >= text.size()) {
                reader.finish();
            } else {
                reader.feed(text.substr(at, piece));
                at += piece;
            }
        } else {
            break;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("The stream reader gives the same records and errors as the whole-buffer reader, however the input is cut", "[unit]") {
    for (std::string_view text : {std::string_view("\xEF\xBB\xBF" "a,b\r\n\r\n\"x,\"\"y\"\"\nz\",2\r\n3,\"\"\n4,5"),
                                  std::string_view("a,b\n1,\"open\n"), std::string_view("a,b\n1,x\"y\n2,3\n"),
                                  std::string_view("a,b\n\"q\"r,1\n"), std::string_view("\n\n"), std::string_view("a\r")}) {
        const read_result whole = read_all(text);
        for (std::size_t piece = 1; piece <= text.size(); ++piece) {
            INFO("piece " << piece << " of " << text);
            std::string raw;
            const read_result streamed = read_in_pieces(text, piece, &raw);
            REQUIRE(streamed.records.size() == whole.records.size());
            for (std::size_t i = 0; i < whole.records.size(); ++i) {
                CHECK(streamed.records[i].line == whole.records[i].line);
                CHECK(streamed.records[i].fields == whole.records[i].fields);
            }
            CHECK(streamed.error.detail == whole.error.detail);
            // Every byte but a BOM belongs to exactly one record, in order.
            const std::string_view body = text.starts_with("\xEF\xBB\xBF") ? text.substr(3) : text;
            if (whole.error.detail.empty()) CHECK(std::string_view(raw) == body.substr(0, raw.size()));
        }
    }
}

TEST_CASE("The stream reader refuses a record longer than its bound instead of buffering it", "[unit]") {
    csv_stream_reader reader(16);
    reader.feed("a,b\n\"" + std::string(64, 'x'));
    csv_record rec;
    failure error;
    REQUIRE(reader.next(rec, error) == csv_stream_reader::status::record);
    CHECK(reader.next(rec, error) == csv_stream_reader::status::error);
    CHECK(contains(error.detail, "line 2: record longer than 16 bytes"));
}
