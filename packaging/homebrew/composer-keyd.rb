# Homebrew formula for composer-keyd, built from the release source tarball.
# Not yet run on a Mac: checked with `ruby -c` and rubocop only (see README, "Install").
class ComposerKeyd < Formula
  desc "Keeps Composer credentials in the OS keyring and serves them to a Composer plugin"
  homepage "https://crates.io/crates/composer-keyd"
  url "https://static.crates.io/crates/composer-keyd/composer-keyd-0.1.0.crate"
  sha256 "c9f57860312bccb30a66b3940c7bc65e28bf8e6017cb09451d6887931b466acc"
  license any_of: ["MIT", "Apache-2.0"]

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args

    generate_completions_from_executable(bin/"composer-keyd", "completions")

    (buildpath/"dist").mkpath
    system bin/"composer-keyd", "dist-files", buildpath/"dist", "--bin", opt_bin/"composer-keyd"
    man1.install Dir[buildpath/"dist/man/*.1"]
  end

  def caveats
    <<~EOS
      Set up the launchd agent and the Composer plugin once, as your user:
        composer-keyd setup
      It stores credentials in the login keychain and finishes with `composer-keyd doctor`.
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/composer-keyd --version")
    assert_match "complete -c composer-keyd", shell_output("#{bin}/composer-keyd completions fish")
  end
end
