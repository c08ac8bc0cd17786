// Config layers (user file < project file < KANDIL_* env < flags), config set/unset, secrets.
#include <sys/stat.h>

#include <cstdlib>

#include "platform/config/config.h"
#include "platform/config/secrets.h"
#include "test_util.h"

namespace kandil::platform {
namespace {

using kandil::testing::read_file;
using kandil::testing::temp_dir;

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// Clears KANDIL_* variables this file sets.
struct EnvGuard {
  std::vector<std::string> names;
  void set(const std::string& n, const std::string& v) {
    ::setenv(n.c_str(), v.c_str(), 1);
    names.push_back(n);
  }
  ~EnvGuard() {
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

TEST(PlatformConfig, PrecedenceUserProjectEnvFlag) {
  const std::string dir = temp_dir();
  ConfigPaths paths{dir + "/user/config.toml", dir + "/proj/.kandil/config.toml"};
  write(paths.user_file,
        "max_tokens = 100\ntemperature = 0.5\nsystem = \"user sys\"\n"
        "[openai]\nbase_url = \"http://user\"\nmodel = \"user-model\"\n");
  write(paths.project_file, "max_tokens = 200\n[openai]\nmodel = \"proj-model\"\n");
  EnvGuard env;
  env.set("KANDIL_OPENAI_MODEL", "env-model");
  env.set("KANDIL_TEMPERATURE", "0.25");

  auto c = Config::load(paths, {{"temperature", "0.1"}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->str("system"), "user sys");  // user only
  EXPECT_EQ(c->get("system")->source, paths.user_file);
  EXPECT_EQ(c->integer("max_tokens"), 200);  // project beats user
  EXPECT_EQ(c->get("max_tokens")->source, paths.project_file);
  EXPECT_EQ(c->str("openai.base_url"), "http://user");
  EXPECT_EQ(c->str("openai.model"), "env-model");  // env beats both files
  EXPECT_EQ(c->get("openai.model")->source, "env KANDIL_OPENAI_MODEL");
  EXPECT_DOUBLE_EQ(c->number("temperature"), 0.1);  // flag beats env
  EXPECT_EQ(c->get("temperature")->source, "flag");
  EXPECT_EQ(c->str("provider"), "builtin");  // default
  EXPECT_EQ(c->get("provider")->source, "default");
  EXPECT_FALSE(c->get("no.such.key"));

  auto no_flag = Config::load(paths);
  ASSERT_TRUE(no_flag.ok());
  EXPECT_DOUBLE_EQ(no_flag->number("temperature"), 0.25);
}

TEST(PlatformConfig, ErrorsNameFileLineAndKey) {
  const std::string dir = temp_dir();
  write(dir + "/a.toml", "max_tokens = 1\n\n[openai]\nbase_urll = \"x\"\n");
  auto c = Config::load({dir + "/a.toml", ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(dir + "/a.toml:4"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("openai.base_urll"), std::string::npos);

  write(dir + "/b.toml", "max_tokens = \"lots\"\n");
  c = Config::load({dir + "/b.toml", ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("b.toml:1"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("integer"), std::string::npos);

  write(dir + "/c.toml", "max_tokens = = 3\n");
  c = Config::load({dir + "/c.toml", ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("c.toml:1"), std::string::npos) << c.error().message;

  write(dir + "/d.toml", "max_tokens = [1, 2]\n");
  c = Config::load({dir + "/d.toml", ""});
  ASSERT_FALSE(c.ok());

  EnvGuard env;
  env.set("KANDIL_NET_RETRIES", "many");
  c = Config::load({"", ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("KANDIL_NET_RETRIES"), std::string::npos);

  EXPECT_FALSE(Config::load({"", ""}, {{"bogus", "1"}}).ok());
}

TEST(PlatformConfig, SetKeepsOtherKeysAndValidates) {
  const std::string file = temp_dir() + "/sub/config.toml";
  ASSERT_TRUE(config_set(file, "openai.base_url", "http://a").ok());
  ASSERT_TRUE(config_set(file, "max_tokens", "64").ok());
  ASSERT_TRUE(config_set(file, "temperature", "0.3").ok());
  ASSERT_TRUE(config_set(file, "openai.model", "m1").ok());
  ASSERT_TRUE(config_set(file, "openai.model", "m2").ok());  // overwrite
  EXPECT_FALSE(config_set(file, "max_tokens", "x").ok());
  EXPECT_FALSE(config_set(file, "openai.api_key", "sk-secret").ok());  // secrets are not config
  auto c = Config::load({file, ""});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->str("openai.base_url"), "http://a");
  EXPECT_EQ(c->str("openai.model"), "m2");
  EXPECT_EQ(c->integer("max_tokens"), 64);
  EXPECT_DOUBLE_EQ(c->number("temperature"), 0.3);
  ASSERT_TRUE(config_unset(file, "openai.model").ok());
  ASSERT_TRUE(config_unset(file, "openai.model").ok());
  c = Config::load({file, ""});
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->get("openai.model"));
  EXPECT_EQ(c->str("openai.base_url"), "http://a");
  EXPECT_FALSE(config_unset(file, "nope").ok());
}

TEST(PlatformConfig, CommentedConfigParsesAndMentionsEveryKey) {
  const std::string text = commented_config();
  for (const auto& k : config_keys()) {
    std::string leaf = k.key;
    if (auto dot = leaf.find('.'); dot != std::string::npos) leaf = leaf.substr(dot + 1);
    EXPECT_NE(text.find("# " + leaf + " = "), std::string::npos) << k.key;
  }
  const std::string file = temp_dir() + "/config.toml";
  write(file, text);
  auto c = Config::load({"", file});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->get("provider")->source, "default");  // everything is commented out
  EXPECT_EQ(env_name("openai.base_url"), "KANDIL_OPENAI_BASE_URL");
}

TEST(PlatformSecrets, EnvThenCredentialsFileWithMode0600) {
  const std::string dir = temp_dir();
  const std::string cred = dir + "/credentials.toml";
  ::unsetenv("KANDIL_OPENAI_API_KEY");
  ::unsetenv("OPENAI_API_KEY");
  auto none = find_api_key("openai", cred);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);

  write(cred, "[openai]\napi_key = \"sk-file-123\"\n");
  ::chmod(cred.c_str(), 0644);
  auto bad = find_api_key("openai", cred);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("chmod 600"), std::string::npos);
  EXPECT_EQ(bad.error().message.find("sk-file-123"), std::string::npos);

  ::chmod(cred.c_str(), 0600);
  auto from_file = find_api_key("openai", cred);
  ASSERT_TRUE(from_file.ok()) << from_file.error().message;
  ASSERT_TRUE(*from_file);
  EXPECT_EQ((*from_file)->value, "sk-file-123");
  EXPECT_EQ((*from_file)->source, cred);

  auto other = find_api_key("anthropic", cred);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*other);

  EnvGuard env;
  env.set("OPENAI_API_KEY", "sk-env-1");
  EXPECT_EQ((*find_api_key("openai", cred))->value, "sk-env-1");
  env.set("KANDIL_OPENAI_API_KEY", "sk-env-2");
  auto k = find_api_key("openai", cred);
  EXPECT_EQ((*k)->value, "sk-env-2");
  EXPECT_EQ((*k)->source, "env KANDIL_OPENAI_API_KEY");

  write(cred, "[openai\napi_key = \"sk-broken-456\"\n");
  ::chmod(cred.c_str(), 0600);
  ::unsetenv("KANDIL_OPENAI_API_KEY");
  ::unsetenv("OPENAI_API_KEY");
  auto broken = find_api_key("openai", cred);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message.find("sk-broken"), std::string::npos);

  EXPECT_EQ(redact("key sk-1 and sk-1 again", "sk-1"), "key [redacted] and [redacted] again");
  EXPECT_EQ(redact("nothing", ""), "nothing");
}

}  // namespace
}  // namespace kandil::platform
