#include "app/cli.h"

namespace phigate::app {

ParsedArgs ParseArgs(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                     const std::set<std::string>& booleans) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2);
    std::string value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (out.Has(name)) throw UsageError("option --" + name + " given twice");
    if (with_value.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
        value = args[++i];
      }
      out.values[name] = value;
    } else if (booleans.count(name) && !inline_value) {
      out.flags.insert(name);
    } else {
      throw UsageError("unknown option --" + name);
    }
  }
  return out;
}

}  // namespace phigate::app
