#include "audit/query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/event.h"
#include "audit/sink.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "crypto/temp_dir.h"

namespace phigate::audit {
namespace {

namespace json = boost::json;

constexpr int64_t kT0 = 1795968000000;  // 2026-11-29T16:00:00.000Z
constexpr std::string_view kBase = "https://h.example/fhir";

json::value Parse(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return value;
}

Result<SearchQuery> Search(const QueryParams& params) { return ParseSearch(params, 1000); }

// ---- ParseSearch ----

TEST(ParseSearchTest, EveryParameter) {
  Result<SearchQuery> q = Search({{"date", "ge2026-11-01"},
                                  {"date", "lt2026-12"},
                                  {"agent", "u1,c1"},
                                  {"patient", "Patient/p1"},
                                  {"entity", "Patient/p1"},
                                  {"entity-type", "Patient"},
                                  {"action", "R"},
                                  {"outcome", "0"},
                                  {"purpose", "TREAT"},
                                  {"subtype", "read"},
                                  {"type", "rest"},
                                  {"query-value", R"(a\,b)"},
                                  {"_count", "10"},
                                  {"_cursor", "5"},
                                  {"_format", "json"},
                                  {"_pretty", "true"}});
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->since_ms, 1793491200000);  // 2026-11-01
  EXPECT_EQ(q->until_ms, 1796083200000);  // lt 2026-12: before December starts
  using Group = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(q->criteria, std::vector<Group>({{{"agent", "u1"}, {"agent", "c1"}},
                                             {{"patient", "p1"}},
                                             {{"entity", "Patient/p1"}},
                                             {{"entity-type", "Patient"}},
                                             {{"action", "R"}},
                                             {{"outcome", "0"}},
                                             {{"purpose", "TREAT"}},
                                             {{"subtype", "read"}},
                                             {{"type", "rest"}},
                                             {{"query-value", "a,b"}}}));
  EXPECT_EQ(q->count, 10);
  EXPECT_EQ(q->after_seq, 5);
  EXPECT_EQ(q->next_query,
            "date=ge2026-11-01&date=lt2026-12&agent=u1%2Cc1&patient=Patient%2Fp1&"
            "entity=Patient%2Fp1&entity-type=Patient&action=R&outcome=0&purpose=TREAT&"
            "subtype=read&type=rest&query-value=a%5C%2Cb&_count=10");
}

TEST(ParseSearchTest, Defaults) {
  Result<SearchQuery> q = Search({});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->since_ms, 0);
  EXPECT_EQ(q->until_ms, std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(q->criteria.empty());
  EXPECT_EQ(q->count, 50);
  EXPECT_EQ(q->after_seq, 0);
  EXPECT_EQ(q->next_query, "");
}

TEST(ParseSearchTest, DatePrefixesAndPrecision) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  struct Case {
    std::string value;
    int64_t since;
    int64_t until;
  };
  const std::vector<Case> cases = {
      {"2026", 1767225600000, 1798761600000},
      {"eq2026-11", 1793491200000, 1796083200000},
      {"2026-12", 1796083200000, 1798761600000},
      {"2026-11-29", 1795910400000, 1795996800000},
      {"ge2026-11-29", 1795910400000, kMax},
      {"gt2026-11-29", 1795996800000, kMax},
      {"le2026-11-29", 0, 1795996800000},
      {"lt2026-11-29", 0, 1795910400000},
      {"2026-11-29T16:00", kT0, kT0 + 60000},
      {"2026-11-29T16:00:00", kT0, kT0 + 1000},
      {"2026-11-29T16:00:00Z", kT0, kT0 + 1000},
      {"2026-11-29T16:00:00.1Z", kT0 + 100, kT0 + 200},
      {"2026-11-29T16:00:00.12Z", kT0 + 120, kT0 + 130},
      {"2026-11-29T16:00:00.123Z", kT0 + 123, kT0 + 124},
      {"2026-11-29T16:00:00.1239Z", kT0 + 123, kT0 + 124},
      {"2026-11-29T17:00:00+01:00", kT0, kT0 + 1000},
      {"gt2026-11-29T15:30:00-00:30", kT0 + 1000, kMax},
  };
  for (const Case& c : cases) {
    Result<SearchQuery> q = Search({{"date", c.value}});
    ASSERT_TRUE(q.ok()) << c.value;
    EXPECT_EQ(q->since_ms, c.since) << c.value;
    EXPECT_EQ(q->until_ms, c.until) << c.value;
  }
  // Repeated: AND (the intersection).
  Result<SearchQuery> q = Search({{"date", "ge2026-11"}, {"date", "le2026-11-29"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->since_ms, 1793491200000);
  EXPECT_EQ(q->until_ms, 1795996800000);
}

TEST(ParseSearchTest, BadValuesNameTheParameterNeverTheValue) {
  const std::string kDate =
      "date must be a date or dateTime (yyyy, yyyy-mm, yyyy-mm-dd or yyyy-mm-ddThh:mm[:ss]) "
      "with an optional prefix eq, ge, gt, le or lt";
  struct Case {
    QueryParams params;
    std::string message;
    std::string expression;
  };
  const std::vector<Case> cases = {
      {{{"date", "2026-13"}}, kDate, "date"},
      {{{"date", "ne2026"}}, kDate, "date"},
      {{{"date", "sa2026-11-29"}}, kDate, "date"},
      {{{"date", "2026-02-30"}}, kDate, "date"},
      {{{"date", "2026-11-29T24:00"}}, kDate, "date"},
      {{{"date", "2026-11-29T16:00:00.Z"}}, kDate, "date"},
      {{{"date", "2026-11-29T16:00+1:00"}}, kDate, "date"},
      {{{"date", "1969"}}, kDate, "date"},
      {{{"date", "SmithCanary"}}, kDate, "date"},
      {{{"date", "2026,2027"}}, kDate, "date"},
      {{{"action", "SmithCanary"}}, "action must be C, R, U, D or E", "action"},
      {{{"action", "R,"}}, "action must be C, R, U, D or E", "action"},
      {{{"outcome", "1"}}, "outcome must be 0, 4, 8 or 12", "outcome"},
      {{{"type", "SmithCanary"}},
       "type must be rest, authentication, administration or system",
       "type"},
      {{{"patient", "Observation/SmithCanary"}},
       "patient must be a patient id or Patient/<id>",
       "patient"},
      {{{"patient", "Patient/"}}, "patient must be a patient id or Patient/<id>", "patient"},
      {{{"entity", "SmithCanary"}}, "entity must be a reference <type>/<id>", "entity"},
      {{{"entity", "Patient/"}}, "entity must be a reference <type>/<id>", "entity"},
      {{{"agent", ""}}, "agent must not have an empty value", "agent"},
      {{{"query-value", "SmithCanary,,x"}},
       "query-value must not have an empty value",
       "query-value"},
      {{{"purpose", ""}}, "purpose must not have an empty value", "purpose"},
      {{{"subtype", ""}}, "subtype must not have an empty value", "subtype"},
      {{{"entity-type", ""}}, "entity-type must not have an empty value", "entity-type"},
      {{{"_count", "0"}}, "_count must be an integer from 1 to 1000", "_count"},
      {{{"_count", "1001"}}, "_count must be an integer from 1 to 1000", "_count"},
      {{{"_count", "SmithCanary"}}, "_count must be an integer from 1 to 1000", "_count"},
      {{{"_count", "5"}, {"_count", "6"}}, "_count may be given only once", "_count"},
      {{{"_cursor", "-1"}}, "invalid _cursor", "_cursor"},
      {{{"_cursor", "SmithCanary"}}, "invalid _cursor", "_cursor"},
      {{{"_cursor", "1"}, {"_cursor", "2"}}, "_cursor may be given only once", "_cursor"},
      {{{"name", "SmithCanary"}}, "unknown search parameter", "name"},
      {{{"patient:missing", "true"}}, "unknown search parameter", "patient:missing"},
  };
  for (const Case& c : cases) {
    Result<SearchQuery> q = Search(c.params);
    ASSERT_FALSE(q.ok()) << c.params[0].first << "=" << c.params[0].second;
    EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(q.status().message(), c.message) << c.params[0].second;
    EXPECT_EQ(q.status().expression(), c.expression) << c.params[0].second;
    EXPECT_THAT(q.status().message(), ::testing::Not(::testing::HasSubstr("Canary")));
  }
}

// ---- the trail ----

class TrailTest : public ::testing::Test {
 protected:
  TrailTest() {
    Result<std::unique_ptr<crypto::Keyring>> ring =
        crypto::Keyring::Open(crypto::RandomBytes(crypto::kKeyBytes), {});
    EXPECT_TRUE(ring.ok());
    keyring_ = std::move(ring).value();
    EXPECT_TRUE(keyring_->AddVersion().ok());
    Result<std::unique_ptr<AuditLog>> log = AuditLog::Open(Dir(), *keyring_, clock_);
    EXPECT_TRUE(log.ok()) << log.status().message();
    log_ = std::move(log).value();
    sink_ = std::make_unique<TrailSink>(*log_, *keyring_);
  }

  std::string Path() const { return tmp_.path() + "/audit"; }
  std::unique_ptr<Directory> Dir() {
    Result<std::unique_ptr<Directory>> dir = PosixDirectory(Path());
    EXPECT_TRUE(dir.ok());
    return std::move(dir).value();
  }

  // Records `event` as sealed at `time_ms`; returns its seq.
  int64_t Record(Event event, int64_t time_ms) {
    event.time_ms = time_ms;
    clock_.Set(time_ms);
    Result<int64_t> seq = sink_->Record(event);
    EXPECT_TRUE(seq.ok()) << seq.status().message();
    return seq.ok() ? *seq : 0;
  }

  Result<std::string> RunSearch(const QueryParams& params,
                                std::vector<std::string>* ids = nullptr) {
    Result<SearchQuery> q = Search(params);
    EXPECT_TRUE(q.ok()) << q.status().message();
    if (!q.ok()) return q.status();
    std::unique_ptr<Directory> dir = Dir();
    return SearchBundle(*dir, *keyring_, *q, kBase, ids);
  }

  // The seqs (AuditEvent ids) of a search's entries, in order.
  std::vector<int64_t> Seqs(const QueryParams& params) {
    Result<std::string> bundle = RunSearch(params);
    EXPECT_TRUE(bundle.ok()) << bundle.status().message();
    return bundle.ok() ? EntrySeqs(*bundle) : std::vector<int64_t>{};
  }

  static std::vector<int64_t> EntrySeqs(std::string_view bundle) {
    std::vector<int64_t> seqs;
    json::value b = Parse(bundle);
    if (const json::value* entries = b.as_object().if_contains("entry")) {
      for (const json::value& entry : entries->as_array()) {
        seqs.push_back(std::stoll(std::string(entry.at("resource").at("id").as_string())));
      }
    }
    return seqs;
  }

  // Every byte of every segment file.
  std::string SegmentBytes() const {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(Path())) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream buf;
      buf << in.rdbuf();
      all += buf.str();
    }
    return all;
  }

  testing::TempDir tmp_;
  FakeClock clock_{kT0};
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<AuditLog> log_;
  std::unique_ptr<TrailSink> sink_;
};

Event Rest(std::string subtype, char action, std::string user, std::string client, std::string type,
           std::string id, std::vector<std::string> patients, int status) {
  Event e;
  e.kind = EventKind::kRest;
  e.subtype = std::move(subtype);
  e.action = action;
  e.user_id = std::move(user);
  e.client_id = std::move(client);
  e.address = "192.0.2.1";
  e.method = action == 'U' ? "PUT" : "GET";
  e.route = id.empty() ? "/fhir/{type}" : "/fhir/{type}/{id}";
  e.resource_type = std::move(type);
  e.resource_id = std::move(id);
  e.patients = std::move(patients);
  e.status = status;
  e.request_id = "r";
  return e;
}

class SearchTest : public TrailTest {
 protected:
  void SetUp() override {
    Event read = Rest("read", 'R', "u1", "c1", "Patient", "p1", {"p1"}, 200);
    read.purpose = "TREAT";
    events_.push_back(read);
    Event other = Rest("read", 'R', "u2", "c2", "Observation", "o1", {"p2"}, 200);
    other.purpose = "HPAYMT";
    events_.push_back(other);
    Event search = Rest("search-type", 'E', "", "c1", "Observation", "", {"p1"}, 200);
    search.returned = {"Observation/o3"};
    search.query = {{"patient", "p1"}};
    events_.push_back(search);
    Event update = Rest("update", 'U', "u1", "c1", "Patient", "p1", {"p1"}, 200);
    update.purpose = "TREAT";
    events_.push_back(update);
    Event denied = Rest("read", 'R', "u3", "", "Patient", "p1", {"p1"}, 403);
    denied.outcome_code = "forbidden";
    denied.denial = "role may not read Patient";
    events_.push_back(denied);
    Event login;
    login.kind = EventKind::kAuthentication;
    login.subtype = "login";
    login.status = 401;
    login.security = {{"login_password_failure", "u4", "", "bad password"}};
    events_.push_back(login);
    Event start;
    start.kind = EventKind::kSystem;
    start.subtype = "start";
    events_.push_back(start);
    for (size_t i = 0; i < events_.size(); ++i) {
      ASSERT_EQ(Record(events_[i], kT0 + static_cast<int64_t>(i) * 1000),
                static_cast<int64_t>(i) + 1);
    }
  }
  std::vector<Event> events_;
};

TEST_F(SearchTest, EachCriterion) {
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(Seqs({}), Ids({1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(Seqs({{"agent", "u1"}}), Ids({1, 4}));
  EXPECT_EQ(Seqs({{"agent", "c1"}}), Ids({1, 3, 4}));
  EXPECT_EQ(Seqs({{"agent", "u4"}}), Ids({6}));  // from the security detail
  EXPECT_EQ(Seqs({{"patient", "p1"}}), Ids({1, 3, 4, 5}));
  EXPECT_EQ(Seqs({{"patient", "Patient/p2"}}), Ids({2}));
  EXPECT_EQ(Seqs({{"entity", "Observation/o3"}}), Ids({3}));
  EXPECT_EQ(Seqs({{"entity", "Patient/p1"}}), Ids({1, 4, 5}));
  EXPECT_EQ(Seqs({{"entity-type", "Observation"}}), Ids({2, 3}));
  EXPECT_EQ(Seqs({{"action", "U"}}), Ids({4}));
  EXPECT_EQ(Seqs({{"outcome", "4"}}), Ids({5, 6}));
  EXPECT_EQ(Seqs({{"outcome", "8"}}), Ids({}));
  EXPECT_EQ(Seqs({{"purpose", "HPAYMT"}}), Ids({2}));
  EXPECT_EQ(Seqs({{"subtype", "search-type"}}), Ids({3}));
  EXPECT_EQ(Seqs({{"type", "authentication"}}), Ids({6}));
  EXPECT_EQ(Seqs({{"type", "system"}}), Ids({7}));
  EXPECT_EQ(Seqs({{"query-value", "p1"}}), Ids({3}));
  EXPECT_EQ(Seqs({{"agent", "nobody"}}), Ids({}));
}

TEST_F(SearchTest, AndAcrossParametersOrWithinOne) {
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(Seqs({{"agent", "u1,u2"}}), Ids({1, 2, 4}));
  EXPECT_EQ(Seqs({{"agent", "c1"}, {"action", "R"}}), Ids({1}));
  EXPECT_EQ(Seqs({{"agent", "c1"}, {"action", "R,E"}}), Ids({1, 3}));
  EXPECT_EQ(Seqs({{"agent", "u1"}, {"agent", "c1"}}), Ids({1, 4}));
  EXPECT_EQ(Seqs({{"patient", "p1"}, {"outcome", "0"}, {"type", "rest"}}), Ids({1, 3, 4}));
  EXPECT_EQ(Seqs({{"patient", "p2"}, {"agent", "u1"}}), Ids({}));
}

TEST_F(SearchTest, DateRange) {
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(Seqs({{"date", "ge2026-11-29T16:00:02.000Z"}, {"date", "lt2026-11-29T16:00:04.000Z"}}),
            Ids({3, 4}));
  EXPECT_EQ(Seqs({{"date", "2026-11-29T16:00:05"}}), Ids({6}));
  EXPECT_EQ(Seqs({{"date", "gt2026-11-29T16:00:05"}}), Ids({7}));
  EXPECT_EQ(Seqs({{"date", "le2026-11-29T16:00:01"}}), Ids({1, 2}));
  EXPECT_EQ(Seqs({{"date", "2026-11-29"}, {"agent", "u1"}}), Ids({1, 4}));
  EXPECT_EQ(Seqs({{"date", "2026-11-28"}}), Ids({}));
  EXPECT_EQ(Seqs({{"date", "gt2026-11-29T16:00:05"}, {"date", "lt2026-11-29T16:00:05"}}), Ids({}));
}

TEST_F(SearchTest, EntriesAreTheRecordedEventsWithTheirSeqAsId) {
  std::vector<std::string> ids;
  Result<std::string> bundle = RunSearch({{"agent", "u2"}}, &ids);
  ASSERT_TRUE(bundle.ok());
  json::value expected_event = Parse(EventJson([&] {
    Event e = events_[1];
    e.time_ms = kT0 + 1000;
    return e;
  }()));
  expected_event.as_object()["id"] = "2";
  json::value expected = {
      {"resourceType", "Bundle"},
      {"type", "searchset"},
      {"link", json::array{json::object{{"relation", "self"},
                                        {"url", "https://h.example/fhir/AuditEvent?agent=u2"}}}},
      {"entry", json::array{json::object{{"fullUrl", "https://h.example/fhir/AuditEvent/2"},
                                         {"resource", expected_event},
                                         {"search", json::object{{"mode", "match"}}}}}}};
  EXPECT_EQ(Parse(*bundle), expected) << *bundle;
  EXPECT_EQ(ids, std::vector<std::string>({"AuditEvent/2"}));
  // The id follows resourceType, as a server-assigned id does.
  EXPECT_NE(bundle->find(R"({"resourceType":"AuditEvent","id":"2",)"), std::string::npos);
}

TEST_F(SearchTest, EmptyResultHasOnlyTheSelfLink) {
  Result<std::string> bundle = RunSearch({{"agent", "nobody"}});
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(*bundle,
            R"({"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":)"
            R"("https://h.example/fhir/AuditEvent?agent=nobody"}]})");
}

TEST_F(SearchTest, PagingCoversEveryRecordExactlyOnce) {
  QueryParams params = {{"_count", "2"}};
  std::vector<std::vector<int64_t>> pages;
  std::vector<std::string> self_links;
  for (int guard = 0; guard < 10; ++guard) {
    Result<std::string> bundle = RunSearch(params);
    ASSERT_TRUE(bundle.ok());
    pages.push_back(EntrySeqs(*bundle));
    json::value b = Parse(*bundle);
    const json::array& links = b.at("link").as_array();
    self_links.push_back(std::string(links[0].at("url").as_string()));
    if (links.size() == 1) break;
    ASSERT_EQ(links[1].at("relation"), json::value("next"));
    const std::string next(links[1].at("url").as_string());
    const std::string prefix = "https://h.example/fhir/AuditEvent?";
    ASSERT_EQ(next.rfind(prefix, 0), 0u) << next;
    std::optional<QueryParams> parsed = ParseQuery(next.substr(prefix.size()));
    ASSERT_TRUE(parsed.has_value());
    params = *parsed;
  }
  EXPECT_EQ(pages, std::vector<std::vector<int64_t>>({{1, 2}, {3, 4}, {5, 6}, {7}}));
  EXPECT_EQ(self_links, std::vector<std::string>({
                            "https://h.example/fhir/AuditEvent?_count=2",
                            "https://h.example/fhir/AuditEvent?_count=2&_cursor=2",
                            "https://h.example/fhir/AuditEvent?_count=2&_cursor=4",
                            "https://h.example/fhir/AuditEvent?_count=2&_cursor=6",
                        }));
}

// A criterion without tags (action) opens every record in range: each page opens at most
// scan_budget of them, ends early (even empty) with a next link after the last record it
// looked at, and following the links still finds every match exactly once.
TEST_F(SearchTest, ScanBudgetEndsAPageEarlyAndPagingStillFindsEveryMatch) {
  QueryParams params = {{"action", "R"}};
  std::vector<std::vector<int64_t>> pages;
  std::vector<std::string> next_links;
  for (int guard = 0; guard < 10; ++guard) {
    Result<SearchQuery> q = Search(params);
    ASSERT_TRUE(q.ok()) << q.status().message();
    q->scan_budget = 2;
    std::unique_ptr<Directory> dir = Dir();
    Result<std::string> bundle = SearchBundle(*dir, *keyring_, *q, kBase, nullptr);
    ASSERT_TRUE(bundle.ok()) << bundle.status().message();
    pages.push_back(EntrySeqs(*bundle));
    const json::value parsed_bundle = Parse(*bundle);
    const json::array& links = parsed_bundle.at("link").as_array();
    if (links.size() == 1) break;
    ASSERT_EQ(links[1].at("relation"), json::value("next"));
    const std::string next(links[1].at("url").as_string());
    next_links.push_back(next);
    const std::string prefix = "https://h.example/fhir/AuditEvent?";
    ASSERT_EQ(next.rfind(prefix, 0), 0u) << next;
    std::optional<QueryParams> parsed = ParseQuery(next.substr(prefix.size()));
    ASSERT_TRUE(parsed.has_value());
    params = *parsed;
  }
  // Records 1, 2 and 5 are reads (R); 3, 4, 6 and 7 are not.
  EXPECT_EQ(pages, std::vector<std::vector<int64_t>>({{1, 2}, {}, {5}, {}}));
  EXPECT_EQ(next_links, std::vector<std::string>({
                            "https://h.example/fhir/AuditEvent?action=R&_cursor=2",
                            "https://h.example/fhir/AuditEvent?action=R&_cursor=4",
                            "https://h.example/fhir/AuditEvent?action=R&_cursor=6",
                        }));
  // The default budget is far beyond this trail: one page, no next link.
  Result<std::string> whole = RunSearch({{"action", "R"}});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(EntrySeqs(*whole), std::vector<int64_t>({1, 2, 5}));
  EXPECT_EQ(Parse(*whole).at("link").as_array().size(), 1u);
}

TEST_F(SearchTest, PagingWithACriterionAndAnExactlyFullLastPage) {
  Result<std::string> first = RunSearch({{"patient", "p1"}, {"_count", "2"}});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(EntrySeqs(*first), std::vector<int64_t>({1, 3}));
  EXPECT_EQ(Parse(*first).at("link").at(1).at("url"),
            json::value("https://h.example/fhir/AuditEvent?patient=p1&_count=2&_cursor=3"));
  Result<std::string> second = RunSearch({{"patient", "p1"}, {"_count", "2"}, {"_cursor", "3"}});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(EntrySeqs(*second), std::vector<int64_t>({4, 5}));
  EXPECT_EQ(Parse(*second).at("link").as_array().size(), 1u);  // nothing follows: no next
}

TEST_F(SearchTest, ReadEventFoundAndAbsent) {
  std::unique_ptr<Directory> dir = Dir();
  Result<std::string> found = ReadEvent(*dir, *keyring_, 3);
  ASSERT_TRUE(found.ok());
  json::value expected = Parse(EventJson([&] {
    Event e = events_[2];
    e.time_ms = kT0 + 2000;
    return e;
  }()));
  expected.as_object()["id"] = "3";
  EXPECT_EQ(Parse(*found), expected);
  for (int64_t seq : {int64_t{0}, int64_t{-1}, int64_t{8}, int64_t{1000}}) {
    Result<std::string> absent = ReadEvent(*dir, *keyring_, seq);
    ASSERT_FALSE(absent.ok()) << seq;
    EXPECT_EQ(absent.status().code(), StatusCode::kNotFound);
    EXPECT_EQ(absent.status().message(), "resource not found");
  }
}

TEST_F(TrailTest, TagsUnderTwoKeyVersionsAreBothFound) {
  Event e = Rest("read", 'R', "u1", "c1", "Patient", "p1", {"p1"}, 200);
  ASSERT_EQ(Record(e, kT0), 1);
  ASSERT_TRUE(keyring_->AddVersion().ok());
  ASSERT_EQ(Record(e, kT0 + 1000), 2);

  // Each record carries the tags of the version current when it was written.
  Result<std::string> key1 = TagKey(*keyring_, 1);
  Result<std::string> key2 = TagKey(*keyring_, 2);
  ASSERT_TRUE(key1.ok() && key2.ok());
  std::vector<std::vector<std::string>> stored;
  std::unique_ptr<Directory> dir = Dir();
  ASSERT_TRUE(ForEachRecord(*dir, 1, [&](const StoredRecord& record) {
                stored.emplace_back(record.tags.begin(), record.tags.end());
                return true;
              }).ok());
  e.time_ms = kT0;
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0], EventTags(e, *key1));
  EXPECT_EQ(stored[1], EventTags(e, *key2));
  EXPECT_NE(stored[0], stored[1]);

  Result<std::string> bundle = RunSearch({{"agent", "u1"}, {"patient", "p1"}});
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(EntrySeqs(*bundle), std::vector<int64_t>({1, 2}));
}

TEST_F(TrailTest, PhiValuesNeverAppearOutsideTheCiphertext) {
  Event e = Rest("search-type", 'E', "u1", "c1", "Patient", "", {"p1"}, 200);
  e.query = {{"name", "CanarySmithQuery"}, {"birthdate", "CanaryBirth,CanaryOther"}};
  e.break_glass_reason = "CanaryBreakGlassReason";
  e.break_glass_grant = "g1";
  e.user_agent = "CanaryAgent/1.0";
  e.returned = {"Patient/p1"};
  e.purpose = "TREAT";
  ASSERT_EQ(Record(e, kT0), 1);
  log_.reset();  // closed: every byte it wrote is in the files
  const std::string bytes = SegmentBytes();
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("Canary"), std::string::npos);
  EXPECT_EQ(bytes.find(Base64Encode("CanarySmithQuery").substr(0, 12)), std::string::npos);
  EXPECT_EQ(bytes.find("TREAT"), std::string::npos);
  EXPECT_EQ(bytes.find("Patient"), std::string::npos);

  // The values are still findable by tag, and readable in the opened record.
  Result<std::string> bundle = RunSearch({{"query-value", "CanarySmithQuery"}});
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(EntrySeqs(*bundle), std::vector<int64_t>({1}));
  EXPECT_EQ(EntrySeqs(*RunSearch({{"query-value", "CanaryOther"}})), std::vector<int64_t>({1}));
  EXPECT_NE(bundle->find("CanaryBreakGlassReason"), std::string::npos);
}

// ---- $disclosures ----

class DisclosuresTest : public TrailTest {
 protected:
  Result<std::string> Disclosures(std::string_view patient, int64_t start, int64_t end,
                                  std::vector<std::string>* ids = nullptr) {
    std::unique_ptr<Directory> dir = Dir();
    return DisclosuresBundle(*dir, *keyring_, patient, start, end, kBase, ids);
  }
};

TEST_F(DisclosuresTest, TwoClientsDisclosedPatientAAndNothingElseIsListed) {
  // 1: client alpha (BAA) reads A.
  Event alpha = Rest("read", 'R', "", "c-alpha", "Patient", "pa", {"pa"}, 200);
  alpha.baa_counterparty = "Alpha & <Analytics>";
  alpha.purpose = "HOPERAT";
  alpha.version = 2;
  ASSERT_EQ(Record(alpha, kT0), 1);
  // 2: a user via client beta searches A's observations.
  Event beta = Rest("search-type", 'E', "u-doc", "c-beta", "Observation", "", {"pa"}, 200);
  beta.returned = {"Observation/o1"};
  beta.query = {{"patient", "pa"}};
  beta.purpose = "TREAT";
  ASSERT_EQ(Record(beta, kT0 + 1000), 2);
  // 3: B's record: not about A.
  ASSERT_EQ(Record(Rest("read", 'R', "", "c-alpha", "Patient", "pb", {"pb"}, 200), kT0 + 2000), 3);
  // 4: denied: nothing was disclosed.
  ASSERT_EQ(Record(Rest("read", 'R', "", "c-gamma", "Patient", "pa", {"pa"}, 403), kT0 + 3000), 4);
  // 5: an auditor searching the trail about A.
  ASSERT_EQ(
      Record(Rest("search-type", 'E', "u-aud", "", "AuditEvent", "", {"pa"}, 200), kT0 + 4000), 5);
  // 6: an update is a change, not a disclosure.
  ASSERT_EQ(Record(Rest("update", 'U', "", "c-beta", "Patient", "pa", {"pa"}, 200), kT0 + 5000), 6);
  // 7: $disclosures itself.
  Event accounting = Rest("operation", 'E', "u-aud", "", "Patient", "pa", {"pa"}, 200);
  accounting.route = "/fhir/Patient/{id}/$disclosures";
  ASSERT_EQ(Record(accounting, kT0 + 6000), 7);
  // 8: not modified (304) sends no content.
  ASSERT_EQ(Record(Rest("vread", 'R', "", "c-beta", "Patient", "pa", {"pa"}, 304), kT0 + 7000), 8);
  // 9: an authentication event that names A (kind is not rest).
  Event auth;
  auth.kind = EventKind::kAuthentication;
  auth.subtype = "token";
  auth.status = 200;
  auth.patients = {"pa"};
  ASSERT_EQ(Record(auth, kT0 + 8000), 9);
  // 10: a disclosure outside the period.
  ASSERT_EQ(Record(Rest("read", 'R', "", "c-alpha", "Patient", "pa", {"pa"}, 200), kT0 + 60000),
            10);

  std::vector<std::string> ids;
  Result<std::string> bundle = Disclosures("pa", kT0, kT0 + 60000, &ids);
  ASSERT_TRUE(bundle.ok()) << bundle.status().message();
  EXPECT_EQ(ids, std::vector<std::string>({"AuditEvent/1", "AuditEvent/2"}));

  json::value b = Parse(*bundle);
  EXPECT_EQ(b.at("resourceType"), json::value("Bundle"));
  EXPECT_EQ(b.at("type"), json::value("collection"));
  const json::array& entries = b.at("entry").as_array();
  ASSERT_EQ(entries.size(), 3u);
  const json::value& list = entries[0].at("resource");
  EXPECT_EQ(list.at("resourceType"), json::value("List"));
  EXPECT_EQ(list.at("status"), json::value("current"));
  EXPECT_EQ(list.at("mode"), json::value("snapshot"));
  EXPECT_EQ(list.at("subject"), Parse(R"({"reference":"Patient/pa"})"));
  EXPECT_EQ(list.at("entry"), Parse(R"([{"item":{"reference":"AuditEvent/1"}},
                                        {"item":{"reference":"AuditEvent/2"}}])"));
  EXPECT_EQ(list.at("text").at("status"), json::value("generated"));
  EXPECT_EQ(
      list.at("text").at("div"),
      json::value("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Accounting of disclosures for "
                  "Patient/pa from 2026-11-29T16:00:00.000Z to 2026-11-29T16:01:00.000Z</p>"
                  "<table><thead><tr><th>Date</th><th>Recipient</th><th>BAA counterparty</th>"
                  "<th>What</th><th>Purpose</th></tr></thead><tbody>"
                  "<tr><td>2026-11-29T16:00:00.000Z</td><td>client c-alpha</td>"
                  "<td>Alpha &amp; &lt;Analytics&gt;</td><td>Patient/pa/_history/2</td>"
                  "<td>HOPERAT</td></tr>"
                  "<tr><td>2026-11-29T16:00:01.000Z</td><td>user u-doc, client c-beta</td>"
                  "<td>-</td><td>search-type Observation</td><td>TREAT</td></tr>"
                  "</tbody></table></div>"));
  EXPECT_EQ(entries[1].at("fullUrl"), json::value("https://h.example/fhir/AuditEvent/1"));
  EXPECT_EQ(entries[1].at("resource").at("id"), json::value("1"));
  EXPECT_EQ(entries[2].at("fullUrl"), json::value("https://h.example/fhir/AuditEvent/2"));
  EXPECT_EQ(entries[2].at("resource").at("agent").at(1).at("who").at("identifier").at("value"),
            json::value("c-beta"));

  // Patient B: only record 3.
  Result<std::string> other = Disclosures("pb", kT0, kT0 + 60000);
  ASSERT_TRUE(other.ok());
  json::value ob = Parse(*other);
  ASSERT_EQ(ob.at("entry").as_array().size(), 2u);
  EXPECT_EQ(ob.at("entry").at(1).at("resource").at("id"), json::value("3"));
}

TEST_F(DisclosuresTest, NoDisclosuresIsAnEmptyList) {
  ASSERT_EQ(Record(Rest("read", 'R', "", "c-alpha", "Patient", "pb", {"pb"}, 200), kT0), 1);
  std::vector<std::string> ids;
  Result<std::string> bundle = Disclosures("pa", kT0, kT0 + 1000, &ids);
  ASSERT_TRUE(bundle.ok());
  EXPECT_TRUE(ids.empty());
  EXPECT_EQ(
      *bundle,
      R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":)"
      R"("List","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">)"
      R"(<p>Accounting of disclosures for Patient/pa from 2026-11-29T16:00:00.000Z to )"
      R"(2026-11-29T16:00:01.000Z</p><p>No disclosures.</p></div>"},"status":"current",)"
      R"("mode":"snapshot","title":"Accounting of disclosures","subject":{"reference":)"
      R"("Patient/pa"},"emptyReason":{"coding":[{"system":)"
      R"("http://terminology.hl7.org/CodeSystem/list-empty-reason","code":"nilknown",)"
      R"("display":"Nil Known"}]}}}]})");
}

}  // namespace
}  // namespace phigate::audit
