// Unit tests of the chat-template interpreter (include/kandil/chat_template.h): expected strings
// checked by hand and against @huggingface/jinja 0.5.13, error messages (template name and line),
// limits against hostile templates, and the GGUF / tokenizer_config.json readers.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "kandil/chat_template.h"
#include "kandil/gguf.h"
#include "test_util.h"

namespace {

using kandil::ChatTemplate;
using kandil::ChatTemplateLimits;
using json = nlohmann::ordered_json;

constexpr int64_t kNow = 1721952000;  // 2024-07-26T00:00:00Z

// Renders `source` with `vars` (JSON text); "ERROR: message" on failure.
std::string render(const std::string& source, const std::string& vars = "{}",
                   ChatTemplateLimits limits = {}) {
  auto t = ChatTemplate::parse(source, "t.jinja");
  if (!t.ok()) return "ERROR: " + t.error().message;
  limits.now = kNow;
  auto r = t->render(json::parse(vars), limits);
  if (!r.ok()) return "ERROR: " + r.error().message;
  return *r;
}

struct Case {
  const char* source;
  const char* vars;
  const char* expected;
};

// Expected outputs were produced by @huggingface/jinja 0.5.13 (trim_blocks + lstrip_blocks) and
// read through by hand.
const Case kCases[] = {
    {R"j(Hello {{ name }}!)j", R"j({"name":"World"})j", R"j(Hello World!)j"},
    {R"j({% if true %}
  yes
{% endif %}
after
)j",
     R"j({})j",
     R"j(  yes
after)j"},
    {R"j(x  {{- 'y' -}}  z
  {%- if true -%}  w  {%- endif %})j",
     R"j({})j", R"j(xyzw)j"},
    {R"j({% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %})j",
     R"j({})j", R"j(10truefalse33|21falsefalse32|32falsetrue31|)j"},
    {R"j({% for x in ['a','b','c'] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }};{% endfor %})j",
     R"j({})j", R"j(<a>b;a<b>c;b<c>;)j"},
    {R"j({% for x in [] %}a{% else %}empty{% endfor %})j", R"j({})j", R"j(empty)j"},
    {R"j({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})j",
     R"j({})j", R"j(0134)j"},
    {R"j({% set ns = namespace(n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }})j",
     R"j({})j", R"j(6)j"},
    {R"j({% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }})j",
     R"j({})j", R"j(213)j"},
    {R"j({% macro greet(name, greeting='Hi') %}{{ greeting }}, {{ name }}{% endmacro %}{{ greet('Ann') }}/{{ greet('Bob', greeting='Yo') }})j",
     R"j({})j", R"j(Hi, Ann/Yo, Bob)j"},
    {R"j({{ '  pad  '|trim }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}|{{ 'hello world'|title }}|{{ 'hello World'|capitalize }}|{{ 'héllo'|length }}|{{ [1,2]|length }})j",
     R"j({})j", R"j(pad|ABC|abc|Hello World|Hello World|5|2)j"},
    {R"j({{ ['a','b','c']|join(', ') }}|{{ 'a-b-a'|replace('a', 'x') }}|{{ [1,2,3]|first }}{{ [1,2,3]|last }}|{{ [1,2,3]|reverse|list }}|{{ undefined_var|default('dflt') }}|{{ ''|default('e', true) }})j",
     R"j({})j", R"j(a, b, c|x-b-x|13|[3, 2, 1]|dflt|e)j"},
    {R"j({{ '42'|int + 1 }}|{{ '3.5'|float }}|{{ 7|string }}|{{ -3|abs }}|{{ [3,1,2,1]|unique|list }}|{{ [3,1,2]|sort }}|{{ 2.0|int }}|{{ 'x7'|int }})j",
     R"j({})j", R"j(43|3.5|7|3|[3, 1, 2]|[1, 2, 3]|2|0)j"},
    {R"j({% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d|dictsort %}{{ k }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %})j",
     R"j({"d":{"b":2,"a":1,"c":3}})j", R"j(b=2;a=1;c=3;|abc|bac)j"},
    {R"j({{ users|map(attribute='name')|join(',') }}|{{ users|selectattr('admin')|map(attribute='name')|list }}|{{ users|rejectattr('admin')|map(attribute='name')|first }}|{{ users|selectattr('name', 'equalto', 'bo')|length }})j",
     R"j({"users":[{"name":"al","admin":true},{"name":"bo","admin":false},{"name":"cy"}]})j",
     R"j(al,bo,cy|["al"]|bo|1)j"},
    {R"j({{ 'a
b

c'|indent }}|{{ 'a
b'|indent(2, true) }})j",
     R"j({})j",
     R"j(a
    b

    c|  a
  b)j"},
    {R"j({{ data|tojson }}|{{ data|tojson(indent=2) }}|{{ 'é"'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ {'b':1,'a':[]}|tojson(sort_keys=true) }}|{{ 1.0|tojson }}|{{ x|tojson }})j",
     R"j({"data":{"a":[1,2.5,null,true],"b":{"c":"d"},"e":[]}})j",
     R"j({"a": [1, 2.5, null, true], "b": {"c": "d"}, "e": []}|{
  "a": [
    1,
    2.5,
    null,
    true
  ],
  "b": {
    "c": "d"
  },
  "e": []
}|"é\""|"\u00e9"|{"a": [], "b": 1}|1|null)j"},
    {R"j({{ x is defined }}{{ y is undefined }}{{ n is none }}{{ 's' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 's' is sequence }}{{ 1.5 is number }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ 3 is odd }}{{ 4 is even }}{{ x is not none }})j",
     R"j({"x":1,"n":null})j", R"j(truetruetruetruetruetruetruetruetruetruetruetruetruetrue)j"},
    {R"j({{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x', 'lo')) }}|{{ '  s  '.strip() }}|{{ '  s  '.lstrip() }}|{{ '  s  '.rstrip() }}|{{ ' a  b c '.split() }}|{{ 'a,b,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'abc'.upper() }}|{{ 'aaa'.replace('a', 'b', 2) }})j",
     R"j({})j", R"j(truetrue|s|s  |  s|["a", "b", "c"]|["a", "b", "c"]|["a", "b,c"]|ABC|bba)j"},
    {R"j({{ 'hello'[::-1] }}|{{ [1,2,3,4][1:3] }}|{{ [1,2,3,4][-1] }}|{{ 'hello'[1] }}|{{ [1,2,3,4][::2] }}|{{ messages[-1].content }})j",
     R"j({"messages":[{"content":"first"},{"content":"last"}]})j",
     R"j(olleh|[2, 3]|4|e|[1, 3]|last)j"},
    {R"j({{ none }}{{ true }}|{{ 1.0 }}|{{ 1.5 }}|{{ [1, 'a', none] }}|{{ {'a': 1, 'b': [true]} }}|{{ 10 / 4 }}|{{ 0.1 + 0.2 }}|{{ 1 / 3 }})j",
     R"j({})j",
     R"j(true|1.0|1.5|[1, "a", null]|{"a": 1, "b": [true]}|2.5|0.30000000000000004|0.3333333333333333)j"},
    {R"j({{ 'a' in 'cat' }}{{ 2 in [1,2] }}{{ 'k' in {'k':1} }}{{ 'z' not in 'cat' }}{{ 'x' in undefined_thing }})j",
     R"j({})j", R"j(truetruetruetruefalse)j"},
    {R"j({{ 'y' if x else 'n' }}{{ 'y' if not x else 'n' }}|{{ x and 'both' }}|{{ 0 or 'fallback' }}|{{ ('only' if false) is defined }})j",
     R"j({"x":true})j", R"j(yn|both|fallback|false)j"},
    {R"j({{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} {{ 'a' ~ 1 ~ missing }} {{ -7 // 2 }} {{ 'ab' + 'cd' }} {{ [1] + [2] }} {{ 2 * 3.0 }})j",
     R"j({})j", R"j(3 3.5 1 1024 3.5 a1 -4 abcd [1, 2] 6.0)j"},
    {R"j({% set x %}abc{{ 1 + 1 }}{% endset %}{{ x|upper }}|{% filter upper %}up {{ 'me' }}{% endfilter %})j",
     R"j({})j", R"j(ABC2|UP ME)j"},
    {R"j({% macro list(items) %}<{{ caller() }}>{% for i in items %}{{ i }}{% endfor %}{% endmacro %}{% call list([1, 2]) %}body{% endcall %})j",
     R"j({})j", R"j(<body>12)j"},
    {R"j({% for m in messages %}{{ m.role }}:{{ m['content'] }}{% if not loop.last %}
{% endif %}{% endfor %}{# a comment #}{% if add_generation_prompt %}
assistant:{% endif %})j",
     R"j({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}],"add_generation_prompt":true})j",
     R"j(user:hiassistant:yoassistant:)j"},
    {R"j({{ '\n\t\u00e9\x41' }}|{{ "it's" }}|{{ 'a' 'b' }})j", R"j({})j",
     R"j(
	éA|it's|ab)j"},
    {R"j({%- generation %}gen{% endgeneration -%}|{{ strftime_now('%Y-%m-%d %b %B %H:%M %%') }})j",
     R"j({})j", R"j(gen|2024-07-26 Jul July 00:00 %)j"},
    {R"j({% set a, b = [1, 2] %}{{ b }}{{ a }}|{% set d = {'k': 'v'} %}{{ d.get('k') }}{{ d.get('z', 'dz') }}{{ d.get('q') }}|{{ d.keys() }}{{ d.values() }}{{ d.items() }}|{{ namespace(a=1).a }})j",
     R"j({})j", R"j(21|vdz|["k"]["v"][["k", "v"]]|1)j"},
    {R"j({{ range(3) }}{{ range(1, 7, 2) }}{{ range(5, 0, -2) }})j", R"j({})j",
     R"j([0, 1, 2][1, 3, 5][5, 3, 1])j"},
    {R"j({% macro m(a) %}{{ a }}{{ kwargs }}{{ varargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }})j",
     R"j({})j", R"j(1{"k": "v"}[2, 3])j"},
};

class TemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // strftime_now() formats local time, as the reference does; pin the zone.
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

TEST_F(TemplateTest, RendersLikeTheReference) {
  int k = 0;
  for (const Case& c : kCases) {
    EXPECT_EQ(render(c.source, c.vars), c.expected) << "case " << k << ": " << c.source;
    ++k;
  }
}

TEST_F(TemplateTest, ParseOnceRenderMany) {
  auto t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}"
      "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
      "mini");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->name(), "mini");
  json vars = {{"bos_token", "<s>"},
               {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
               {"add_generation_prompt", false}};
  EXPECT_EQ(*t->render(vars), "<s>[user]hi");
  vars["add_generation_prompt"] = true;
  EXPECT_EQ(*t->render(vars), "<s>[user]hi[assistant]");
  // The unordered json type renders too.
  nlohmann::json plain = {{"messages", nlohmann::json::array()}, {"bos_token", "B"}};
  EXPECT_EQ(*t->render(plain), "B");
}

TEST_F(TemplateTest, KeepsKeyOrderOfVariables) {
  EXPECT_EQ(render("{{ tool|tojson }}", R"({"tool": {"z": 1, "a": {"y": 2.5, "b": null}}})"),
            R"({"z": 1, "a": {"y": 2.5, "b": null}})");
  // JSON numbers with an integral value are integers, as in JavaScript.
  EXPECT_EQ(render("{{ x }} {{ y }}", R"({"x": 2.0, "y": 2.25})"), "2 2.25");
}

TEST_F(TemplateTest, RaiseExceptionNamesTemplateAndLine) {
  EXPECT_EQ(render("line one\n{{ raise_exception('Conversation roles must alternate') }}"),
            "ERROR: t.jinja:2: raise_exception: Conversation roles must alternate");
}

TEST_F(TemplateTest, ErrorsNameTemplateAndLine) {
  EXPECT_EQ(render("a\nb\n{{ 'x'|nosuchfilter }}"),
            "ERROR: t.jinja:3: Unknown StringValue filter: nosuchfilter");
  EXPECT_EQ(render("{% if x %}\nabc\n"),
            "ERROR: t.jinja:2: unexpected end of template: 'if' block opened on line 1 is never "
            "closed");
  EXPECT_EQ(render("{% for m in messages %}{{ m }}"),
            "ERROR: t.jinja:1: unexpected end of template: 'for' block opened on line 1 is never "
            "closed");
  EXPECT_EQ(render("\n{{ 1 + }}"), "ERROR: t.jinja:2: unexpected '}}' in an expression");
  EXPECT_EQ(render("{% include 'other.jinja' %}"),
            "ERROR: t.jinja:1: unsupported statement 'include'");
  EXPECT_EQ(render("{{ x is frobnicated }}"), "ERROR: t.jinja:1: Unknown test: frobnicated");
  EXPECT_EQ(render("{{ 'abc }}"),
            "ERROR: t.jinja:1: Unexpected end of input (unterminated string)");
  EXPECT_EQ(render("{# never closed"), "ERROR: t.jinja:1: Missing end of comment tag");
  EXPECT_EQ(render("{{ a @ b }}"), "ERROR: t.jinja:1: Unexpected character: @");
  EXPECT_EQ(render("{% endif %}"), "ERROR: t.jinja:1: unsupported statement 'endif'");
  EXPECT_EQ(render("{% break %}"), "ERROR: t.jinja:1: 'break' outside a loop");
  EXPECT_EQ(render("{{ messages[0] }}"),
            "ERROR: t.jinja:1: Cannot access property with non-string: got IntegerValue");
  EXPECT_EQ(render("{{ 1 < 'a' }}"),
            "ERROR: t.jinja:1: Unknown operator \"<\" between IntegerValue and StringValue");
  EXPECT_EQ(render("{{ f() }}", R"({"f": 1})"),
            "ERROR: t.jinja:1: Cannot call something that is not a function: got IntegerValue");
  EXPECT_EQ(render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "ERROR: t.jinja:1: macro 'm' takes not more than 1 argument(s)");
  EXPECT_NE(render("{{ 5 // 0 + [] }}").find("ERROR: t.jinja:1:"), std::string::npos);
  auto t = ChatTemplate::parse("ok", "x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->render(json::array()).error().message,
            "x: template variables must be a JSON object");
}

TEST_F(TemplateTest, HostileTemplatesEndWithErrors) {
  ChatTemplateLimits small;
  small.max_steps = 100000;
  EXPECT_EQ(
      render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
             "{}", small),
      "ERROR: t.jinja:1: template exceeded the evaluation step limit (100000)");
  EXPECT_NE(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursion is too deep"),
            std::string::npos);
  const std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(render(deep).find("nests too deeply"), std::string::npos);
  std::string ifs;
  for (int k = 0; k < 1000; ++k) ifs += "{% if true %}";
  EXPECT_NE(render(ifs).find("nests too deeply"), std::string::npos);
  EXPECT_NE(render("{{ range(100000000) }}").find("range() of more than"), std::string::npos);
  ChatTemplateLimits tiny;
  tiny.max_output = 1000;
  EXPECT_NE(render("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", "{}", tiny).find("exceeds"),
            std::string::npos);
  EXPECT_NE(render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + "
                   "ns.s %}{% endfor %}",
                   "{}", tiny)
                .find("exceeds the size limit"),
            std::string::npos);
  // A namespace that holds itself must not leak (checked under ASan).
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me is defined }}"),
            "true");
}

TEST_F(TemplateTest, RendersEveryRealTemplateInTestData) {
  // Every template of tests/data/templates renders (or raises as the template intends) on every
  // message set; the byte-for-byte comparison with @huggingface/jinja is tests/js/jinja.
  const std::string root = std::string(KANDIL_SOURCE_DIR) + "/tests/data";
  int rendered = 0, templates = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root + "/templates")) {
    if (entry.path().extension() != ".jinja") continue;
    ++templates;
    auto t = ChatTemplate::parse(kandil::testing::read_file(entry.path().string()),
                                 entry.path().filename().string());
    ASSERT_TRUE(t.ok()) << t.error().message;
    for (const auto& m : std::filesystem::directory_iterator(root + "/template_messages")) {
      json input = json::parse(kandil::testing::read_file(m.path().string()));
      json vars = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_generation_prompt", true}};
      if (input.is_array()) {
        vars["messages"] = input;
      } else {
        for (auto it = input.begin(); it != input.end(); ++it) vars[it.key()] = it.value();
      }
      auto r = t->render(vars);
      if (r.ok()) {
        ++rendered;
        EXPECT_FALSE(r->empty()) << entry.path();
      } else {
        EXPECT_EQ(r.error().message.rfind(entry.path().filename().string() + ":", 0), 0u)
            << r.error().message;
      }
    }
  }
  EXPECT_GE(templates, 10);
  EXPECT_GT(rendered, templates * 3);
}

TEST_F(TemplateTest, Llama31SystemPromptMatchesReference) {
  const std::string root = std::string(KANDIL_SOURCE_DIR) + "/tests/data";
  auto t = ChatTemplate::parse(
      kandil::testing::read_file(root + "/templates/llama-3.1-8b-instruct.jinja"), "llama-3.1");
  ASSERT_TRUE(t.ok()) << t.error().message;
  json vars = json::parse(kandil::testing::read_file(root + "/template_messages/system_user.json"));
  vars["bos_token"] = "<|begin_of_text|>";
  vars["add_generation_prompt"] = true;
  auto r = t->render(vars);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "You are a concise assistant. Answer in one sentence.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateInfo, ReadsGgufTemplateAndSpecialTokens) {
  kandil::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.chat_template", "{{ bos_token }}{{ messages[0].content }}");
  w.set_string("tokenizer.chat_template.tool_use", "TOOLS");
  w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  const auto bytes = w.serialize();
  auto f = kandil::GgufFile::parse(bytes.data(), bytes.size(), "m.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  auto info = kandil::chat_template_info_from_gguf(*f);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->chat_template.value(), "{{ bos_token }}{{ messages[0].content }}");
  EXPECT_EQ(info->bos_token, "<s>");
  EXPECT_EQ(info->eos_token, "</s>");
  EXPECT_EQ(info->find("tool_use").value(), "TOOLS");
  EXPECT_EQ(info->find("").value(), *info->chat_template);
  EXPECT_FALSE(info->find("rag").has_value());

  kandil::GgufWriter bad;
  bad.set_strings("tokenizer.ggml.tokens", {"a"});
  bad.set_u32("tokenizer.ggml.bos_token_id", 7);
  const auto bad_bytes = bad.serialize();
  auto g = kandil::GgufFile::parse(bad_bytes.data(), bad_bytes.size(), "bad.gguf");
  ASSERT_TRUE(g.ok());
  auto e = kandil::chat_template_info_from_gguf(*g);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("outside the vocabulary"), std::string::npos);
  auto none = kandil::chat_template_from_gguf(*g);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(ChatTemplateInfo, ReadsTokenizerConfigForms) {
  const std::string dir = kandil::testing::temp_dir();
  {
    std::ofstream(dir + "/tokenizer_config.json") << R"({
      "bos_token": {"content": "<s>", "lstrip": false},
      "eos_token": "</s>",
      "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]
    })";
  }
  auto info = kandil::chat_template_info_from_hf_dir(dir);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->chat_template.value(), "D");
  EXPECT_EQ(info->find("tool_use").value(), "T");
  EXPECT_EQ(info->bos_token, "<s>");
  EXPECT_EQ(info->eos_token, "</s>");

  {
    std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": null})";
    std::ofstream(dir + "/chat_template.jinja") << "J";
  }
  info = kandil::chat_template_info_from_hf_dir(dir);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->chat_template.value(), "J");
  EXPECT_EQ(info->eos_token, "");

  { std::ofstream(dir + "/tokenizer_config.json") << R"({"chat_template": 5})"; }
  info = kandil::chat_template_info_from_hf_dir(dir);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("tokenizer_config.json: chat_template must be"),
            std::string::npos);
  { std::ofstream(dir + "/tokenizer_config.json") << R"({"bos_token": 3})"; }
  EXPECT_FALSE(kandil::chat_template_info_from_hf_dir(dir).ok());
  { std::ofstream(dir + "/tokenizer_config.json") << "{not json"; }
  info = kandil::chat_template_info_from_hf_dir(dir);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(kandil::chat_template_info_from_hf_dir(dir + "/missing").ok());
}

}  // namespace
