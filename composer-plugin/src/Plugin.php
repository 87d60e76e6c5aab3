<?php

/*
 * The Composer side of composer-keyd: loads the project's credentials from the
 * daemon into Composer's IO at activation, serves origins that appear only at
 * download time, offers prompted credentials to the daemon instead of
 * auth.json, and names composer-keyd when a run fails after using its
 * credentials. It loads only the origins the project names (least privilege),
 * then, before the installer downloads or clones anything, those of the
 * packages it is about to install or update, and talks only to a socket that passes the trust rule. A daemon that is
 * absent, untrusted, locked or hung never breaks Composer.
 */

namespace ComposerKeyd;

use Composer\Composer;
use Composer\EventDispatcher\EventSubscriberInterface;
use Composer\Factory;
use Composer\IO\IOInterface;
use Composer\Plugin\PluginInterface;
use Composer\Util\Url;

final class Plugin implements PluginInterface, EventSubscriberInterface
{
    /** Keep in step with composer.json; `composer-keyd shim status` compares them. */
    const VERSION = '0.1.0';
    const LOCKED_LINE = 'composer-keyd is locked: run `composer-keyd unlock`';

    /** @var Composer|null */
    private $composer;
    /** @var IOInterface|null */
    private $io;
    /** @var Client|null null while the daemon has not answered, or after it failed */
    private $client;
    /** @var string|null */
    private $project;
    /** @var bool */
    private $locked = false;
    /** @var mixed Composer's store-auths before this plugin turned it off */
    private $storeAuths = 'prompt';
    /** @var array<string, array{0: string, 1: string}> origin => the pair set from composer-keyd */
    private $served = array();
    /** @var array<string, true> origins already asked again past the daemon's cache */
    private $refreshedOnce = array();
    /** @var array<string, array{origin: string, enabled: bool}> lower-cased origin => the daemon's entry, from activation */
    private $available = array();
    /** @var array<string, bool> origins already asked for, found or not */
    private $asked = array();
    /** @var array<string, array{username: string|null, password: string|null}> IO's credentials after activation */
    private $known = array();
    /** @var array<string, bool> origins whose prompted credentials were offered to the daemon */
    private $offered = array();
    /** @var array<string, string> URL => origin, for requests with our credentials not seen completing */
    private $pending = array();
    /** @var string|null */
    private $command;
    /** @var bool */
    private $scripts = true;
    /** @var bool */
    private $succeeded = false;

    public static function getSubscribedEvents(): array
    {
        return array(
            'command' => 'onCommand',
            'pre-file-download' => array('onPreFileDownload', 100),
            // Composer\Installer\InstallerEvents::PRE_OPERATIONS_EXEC, spelled out so that this
            // class loads without Composer's classes (the plugin's own tests).
            'pre-operations-exec' => array('onPreOperationsExec', 100),
            'post-file-download' => 'onPostFileDownload',
            'post-install-cmd' => 'onSuccess',
            'post-update-cmd' => 'onSuccess',
            'post-create-project-cmd' => 'onSuccess',
        );
    }

    public function activate(Composer $composer, IOInterface $io): void
    {
        $this->composer = $composer;
        $this->io = $io;
        $this->guard(array($this, 'load'));
        $this->known = $io->getAuthentications();
        register_shutdown_function(array($this, 'onShutdown'));
    }

    public function deactivate(Composer $composer, IOInterface $io): void
    {
    }

    public function uninstall(Composer $composer, IOInterface $io): void
    {
    }

    /**
     * Runs a step so that no failure of ours can break Composer's run.
     *
     * @param mixed $arg
     */
    private function guard(callable $step, $arg = null): void
    {
        try {
            call_user_func($step, $arg);
        } catch (\Exception $e) {
            $this->client = null;
            $this->io->writeError('<warning>composer-keyd: ' . $e->getMessage() . '; continuing without it</warning>');
        } catch (\Throwable $e) {
            $this->client = null;
            $this->io->writeError('<warning>composer-keyd: internal error (' . get_class($e) . '); continuing without it</warning>');
        }
    }

    /**
     * Loads the origins this project names that the daemon has; VCS (git) paths read IO
     * and fire no event, so these cannot wait. Any other origin waits for a download.
     */
    private function load(): void
    {
        $this->project = self::projectRoot();
        $client = Client::fromEnvironment(1.5, self::VERSION);
        try {
            $origins = $client->origins($this->project);
        } catch (DaemonException $e) {
            $this->report($e, null);

            return;
        }
        $this->client = $client;
        // Prompted credentials go to the daemon (offered after they work), never to auth.json.
        $this->storeAuths = $this->composer->getConfig()->get('store-auths');
        $this->composer->getConfig()->merge(array('config' => array('store-auths' => false)));
        foreach ($origins as $entry) {
            $this->available[strtolower($entry['origin'])] = $entry;
        }
        $this->loadNeeded($this->neededOrigins(), 'this project does not name it');
    }

    /**
     * Loads each origin of $needed that the daemon listed and nobody asked for yet.
     *
     * @param array<string, string> $needed lower-cased origin => origin as Composer spells it
     */
    private function loadNeeded(array $needed, string $why): void
    {
        foreach ($this->available as $key => $entry) {
            if (isset($this->asked[$entry['origin']])) {
                continue;
            }
            if (!isset($needed[$key])) {
                // Least privilege: released only if this run turns out to need it.
                $this->io->writeError('composer-keyd: not loading ' . $entry['origin'] . ' now: ' . $why, true, IOInterface::VERY_VERBOSE);
                continue;
            }
            $origin = $needed[$key];
            $this->asked[$origin] = true;
            $this->asked[$entry['origin']] = true;
            if (!$entry['enabled']) {
                $this->io->writeError(sprintf('<warning>composer-keyd: the credential for %s is disabled; run `composer-keyd enable %s` to use it</warning>', $origin, $origin));
                continue;
            }
            if ($this->io->hasAuthentication($origin)) {
                $this->io->writeError('composer-keyd: ' . $origin . ' already has credentials in Composer\'s config (auth.json or COMPOSER_AUTH); keeping those', true, IOInterface::VERBOSE);
                continue;
            }
            $this->fetch($entry['origin'], $origin);
            if ($this->client === null || $this->locked) {
                return;
            }
        }
    }

    /**
     * Before the installer downloads or clones anything: loads the origins of the packages
     * this run installs or updates. A git source (a transitive package, or an update with
     * no lock yet) fires no download event, so without this its origin gets no credential
     * and no git helper.
     */
    private function loadOperations(\Composer\Installer\InstallerEvent $event): void
    {
        $transaction = $event->getTransaction();
        if ($this->client === null || $this->locked || $transaction === null) {
            return;
        }
        $urls = ProjectOrigins::operationUrls($transaction->getOperations());
        $config = $this->composer->getConfig();
        $needed = ProjectOrigins::originsOf($urls, function (string $url) use ($config): string {
            return Url::getOrigin($config, $url);
        }, $this->forgeDomains());
        $this->loadNeeded($needed, 'no package of this run uses it');
    }

    /** @return array<string, string> lower-cased origin => origin as Composer spells it */
    private function neededOrigins(): array
    {
        $config = $this->composer->getConfig();
        $repositories = array_merge(array_values($config->getRepositories()), $this->composer->getPackage()->getRepositories());
        $originOf = function (string $url) use ($config): string {
            return Url::getOrigin($config, $url);
        };

        return ProjectOrigins::collect($repositories, ProjectOrigins::readLock(Factory::getComposerFile()), $originOf, $this->forgeDomains());
    }

    /** @return array<int, string> github-domains, gitlab-domains and forgejo-domains together */
    private function forgeDomains(): array
    {
        $forges = array();
        foreach (array('github-domains', 'gitlab-domains', 'forgejo-domains') as $key) {
            $domains = $this->composer->getConfig()->get($key);
            if (is_array($domains)) {
                $forges = array_merge($forges, $domains);
            }
        }

        return $forges;
    }

    /**
     * Asks the daemon for $lookup's credential and, when it has one, gives it to IO under $origin.
     *
     * @param string $lookup the origin as sent to the daemon
     * @param string $origin the origin as Composer spells it
     * @return bool whether credentials were set
     */
    private function fetch(string $lookup, string $origin): bool
    {
        try {
            $credential = $this->client->credential($lookup, $this->project);
        } catch (DaemonException $e) {
            $this->report($e, $lookup);

            return false;
        }
        $type = $credential['type'];
        $unsupported = Credentials::unsupported($type, self::composerVersion());
        if ($unsupported !== null) {
            $this->io->writeError(sprintf('<warning>composer-keyd: not using the credential for %s: %s</warning>', $origin, $unsupported));

            return false;
        }
        $pair = Credentials::toPair($credential);
        if ($pair === null) {
            $this->io->writeError(sprintf('<warning>composer-keyd: the %s credential for %s is not one this plugin can use; update the plugin with `composer-keyd shim install`</warning>', $type, $origin));

            return false;
        }
        $problem = Credentials::problem($type, $pair);
        if ($problem !== null) {
            $this->io->writeError(sprintf('<warning>composer-keyd: skipping the credential for %s: %s</warning>', $origin, $problem));

            return false;
        }
        if (!$this->gitCanTake($type, $origin)) {
            return false;
        }
        $this->addDomain(Credentials::domainsKey($type), $origin);
        $this->io->setAuthentication($origin, $pair[0], $pair[1]);
        $this->served[$origin] = $pair;
        $this->warnExpiry($lookup, $origin);
        GitCredentials::configure(array($origin), $this->project, $this->composer->getConfig()->get('secure-http') === false);
        if (GitCredentials::binary() === null) {
            $this->io->writeError('composer-keyd: no composer-keyd binary on PATH (or $COMPOSER_KEYD_BIN): git gets no credential for ' . $origin . ', and stops with one line', true, IOInterface::VERBOSE);
        }
        $this->io->writeError(sprintf('composer-keyd: using the %s credential for %s', $type, $origin), true, IOInterface::VERBOSE);

        return true;
    }

    /**
     * One line when the credential expires within the warning window, or has expired: it
     * is still used (the server decides whether it works), and the line names the fix.
     */
    private function warnExpiry(string $lookup, string $origin): void
    {
        $entry = $this->available[strtolower($lookup)] ?? null;
        if ($entry === null || !is_int($entry['expires'] ?? null)) {
            return;
        }
        $at = $entry['expires'];
        $left = $at - time();
        $target = $entry['origin'];
        if ($entry['project'] !== null) {
            $target .= ' --project ' . (preg_match('{^[A-Za-z0-9/._+:@,=-]+$}', $entry['project']) ? $entry['project'] : escapeshellarg($entry['project']));
        }
        $day = gmdate('Y-m-d', $at);
        if ($left <= 0) {
            $this->io->writeError(sprintf('<warning>composer-keyd: the credential for %s expired on %s; it is still sent, and the server may refuse it: store a new one with `composer-keyd rotate %s`</warning>', $origin, $day, $target));
        } elseif ($left <= $this->client->expiryWarningDays() * 86400) {
            $days = intdiv($left + 86399, 86400);
            $when = $left < 86400 ? 'within a day' : ($days === 1 ? 'in 1 day' : 'in ' . $days . ' days');
            $this->io->writeError(sprintf('<warning>composer-keyd: the credential for %s expires on %s (%s); store a new one with `composer-keyd rotate %s`</warning>', $origin, $day, $when, $target));
        }
    }

    /**
     * Whether this credential may be given to Composer, as far as git is concerned. On the
     * forges' hosts (github-domains, gitlab-domains, bitbucket.org) Composer's Util\Git
     * retries after ANY failed git command with IO's credential in the URL, git's argv. So
     * a type the git helper cannot hand to git, which would leave git failing there, is not
     * given to Composer at all; the line says so. Elsewhere Composer retries only after an
     * authentication failure, which the helper's `--strict` (quit=1) never lets git report.
     */
    private function gitCanTake(string $type, string $origin): bool
    {
        if (!$this->isForge($origin)) {
            return true;
        }
        $version = null;
        if ($type === 'bearer') {
            $version = \Composer\Util\Git::getVersion(new \Composer\Util\ProcessExecutor($this->io));
        }
        if (Credentials::gitCarries($type, $version)) {
            return true;
        }
        $this->io->writeError(sprintf(
            '<warning>composer-keyd: not using the %s credential for %s: git cannot take it from composer-keyd%s, and on this host Composer retries a failed git command with the credential in git\'s command line, which every local user can read</warning>',
            $type,
            $origin,
            $type === 'bearer' ? ' before git ' . Credentials::GIT_BEARER_SINCE . ' (this is ' . ($version === null ? 'an unknown version' : $version) . ')' : ''
        ));

        return false;
    }

    /** The hosts of Util\Git's forge paths: github-domains, gitlab-domains and bitbucket.org. */
    private function isForge(string $origin): bool
    {
        $hosts = array('bitbucket.org');
        foreach (array('github-domains', 'gitlab-domains') as $key) {
            $domains = $this->composer->getConfig()->get($key);
            if (is_array($domains)) {
                $hosts = array_merge($hosts, $domains);
            }
        }

        return in_array(strtolower($origin), array_map('strtolower', $hosts), true);
    }

    /** As BaseIO does: a token for a host makes Composer treat that host as the forge. */
    private function addDomain(?string $key, string $origin): void
    {
        if ($key === null) {
            return;
        }
        $config = $this->composer->getConfig();
        $domains = $config->get($key);
        if (is_array($domains) && !in_array($origin, $domains, true)) {
            $config->merge(array('config' => array($key => array_merge($domains, array($origin)))));
        }
    }

    /** Says what went wrong in one line, and stops talking to a daemon that cannot answer. */
    private function report(DaemonException $e, ?string $origin): void
    {
        switch ($e->getKind()) {
            case DaemonException::UNTRUSTED:
                // Nothing was sent; Composer's own store-auths stays, as without the plugin.
                $this->client = null;
                $this->io->writeError('<warning>composer-keyd: ' . $e->getMessage() . '</warning>');

                return;
            case DaemonException::ABSENT:
                $fix = $this->grantFix();
                $this->client = null;
                if ($fix !== null) {
                    // Another uid (a container's user) is refused by design: name the grant that admits it.
                    $this->io->writeError('<warning>composer-keyd: ' . $e->getMessage() . '; ' . $fix . '; continuing with Composer\'s own credentials</warning>');

                    return;
                }
                $this->io->writeError('composer-keyd: ' . $e->getMessage() . '; continuing with Composer\'s own credentials', true, IOInterface::VERBOSE);

                return;
            case DaemonException::TIMEOUT:
            case DaemonException::BAD_REPLY:
                $this->client = null;
                $this->io->writeError('<warning>composer-keyd: ' . $e->getMessage() . '; continuing without it</warning>');

                return;
            case DaemonException::LOCKED:
                if (!$this->locked) {
                    $this->io->writeError('<warning>' . self::LOCKED_LINE . '</warning>');
                    // A locked daemon cannot take prompted credentials: Composer's own choice applies again.
                    $this->composer->getConfig()->merge(array('config' => array('store-auths' => $this->storeAuths)));
                }
                $this->locked = true;

                return;
            case DaemonException::NOT_FOUND:
                $this->io->writeError('composer-keyd: no credential for ' . $origin, true, IOInterface::VERY_VERBOSE);

                return;
            case DaemonException::DISABLED:
                $this->io->writeError(sprintf('<warning>composer-keyd: the credential for %s is disabled; run `composer-keyd enable %s` to use it</warning>', $origin, $origin));

                return;
        }
        $this->io->writeError('<warning>composer-keyd: ' . ($origin === null ? '' : $origin . ': ') . $e->getMessage() . '</warning>');
    }

    public function onCommand(\Composer\Plugin\CommandEvent $event): void
    {
        $this->guard(array($this, 'command'), $event);
    }

    public function onPreFileDownload(\Composer\Plugin\PreFileDownloadEvent $event): void
    {
        $this->guard(array($this, 'preDownload'), $event);
    }

    public function onPreOperationsExec(\Composer\Installer\InstallerEvent $event): void
    {
        $this->guard(array($this, 'loadOperations'), $event);
    }

    public function onPostFileDownload(\Composer\Plugin\PostFileDownloadEvent $event): void
    {
        unset($this->pending[$event->getUrl()]);
        $this->guard(array($this, 'offerPrompted'));
    }

    public function onSuccess(): void
    {
        $this->succeeded = true;
        $this->guard(array($this, 'offerPrompted'));
    }

    /** Names composer-keyd and the fix when a run that used its credentials did not succeed. */
    public function onShutdown(): void
    {
        $this->guard(array($this, 'hintOnFailure'));
    }

    private function command(\Composer\Plugin\CommandEvent $event): void
    {
        $this->command = $event->getCommandName();
        $input = $event->getInput();
        $this->scripts = !($input->hasOption('no-scripts') && $input->getOption('no-scripts'));
    }

    private function preDownload(\Composer\Plugin\PreFileDownloadEvent $event): void
    {
        $url = $event->getProcessedUrl();
        if (!preg_match('{^https?://}i', $url)) {
            return;
        }
        $origin = Url::getOrigin($this->composer->getConfig(), $url);
        if (!isset($this->served[$origin]) && !isset($this->asked[$origin]) && $this->client !== null && !$this->locked
            && !$this->io->hasAuthentication($origin)) {
            $this->asked[$origin] = true;
            $this->fetch($origin, $origin);
        }
        if (isset($this->served[$origin])) {
            $this->pending[$url] = $origin;
        }
    }

    /** Offers credentials typed at Composer's prompt, once they have worked, to the daemon. */
    private function offerPrompted(): void
    {
        if ($this->client === null || $this->locked || !$this->io->isInteractive()) {
            return;
        }
        foreach ($this->io->getAuthentications() as $origin => $auth) {
            $origin = (string) $origin;
            if (isset($this->offered[$origin]) || isset($this->served[$origin])
                || (isset($this->known[$origin]) && $this->known[$origin] === $auth)
                || !is_string($auth['username']) || !is_string($auth['password'])) {
                continue;
            }
            $this->offered[$origin] = true;
            $credential = Credentials::fromPair($auth['username'], $auth['password']);
            // Composer's GitHub/GitLab/Bitbucket flows write their tokens to auth.json themselves.
            if ($credential['type'] !== 'http-basic') {
                continue;
            }
            if (!$this->io->askConfirmation(sprintf('Store the credentials for <info>%s</info> in composer-keyd (the OS keyring) instead of auth.json? [<comment>Y,n</comment>] ', $origin), true)) {
                continue;
            }
            try {
                $outcome = $this->client->store($origin, $credential, null);
            } catch (DaemonException $e) {
                $this->report($e, $origin);
                continue;
            }
            if ($outcome === Client::OUTCOME_CONFLICT) {
                $this->io->writeError(sprintf('<warning>composer-keyd already holds other credentials for %s; replace them with `composer-keyd rotate %s`</warning>', $origin, $origin));
            } else {
                $this->io->writeError(sprintf('composer-keyd: stored the credentials for %s (%s)', $origin, $outcome));
            }
        }
    }

    /**
     * Asks the daemon once, past its cache, for a credential the run used and a repository
     * may have refused: a pair rotated in a team source (OpenBao/Vault) comes back new, and
     * the next run uses it. Composer offers no retry of a refused download to a plugin. The
     * first line against a rotation is the Client's: each run's first lookup of an origin
     * reads team entries through, so this one is reached only when the pair changed during
     * the run, or the engine could not be reached at its start.
     */
    private function refreshed(string $origin): bool
    {
        if ($this->client === null || !isset($this->served[$origin]) || isset($this->refreshedOnce[$origin])) {
            return false;
        }
        $this->refreshedOnce[$origin] = true;
        try {
            $pair = Credentials::toPair($this->client->credential($origin, $this->project, true));
        } catch (DaemonException $e) {
            $this->report($e, $origin);

            return true;
        }
        if ($pair === null || $pair === $this->served[$origin]) {
            return false;
        }
        $this->io->writeError(sprintf('<warning>composer-keyd: the credential for %s changed in its source; run the command again to use the new one.</warning>', $origin));

        return true;
    }

    private function hintOnFailure(): void
    {
        if ($this->io === null || $this->succeeded || !$this->scripts || $this->served === array()
            || !in_array($this->command, array('install', 'update', 'require', 'remove', 'reinstall', 'create-project'), true)) {
            return;
        }
        $suspects = array_flip(array_values($this->pending)) + $this->vcsOrigins();
        foreach (array_keys($suspects) as $origin) {
            if ($this->refreshed((string) $origin)) {
                continue;
            }
            $this->io->writeError(sprintf(
                '<error>composer-keyd supplied the credentials for %s. If %s refused them (HTTP 401/403), check them with `composer-keyd check %s` or replace them with `composer-keyd rotate %s`.</error>',
                $origin,
                $origin,
                $origin,
                $origin
            ));
        }
    }

    /** @return array<string, int> served origins of the root package's VCS repositories */
    private function vcsOrigins(): array
    {
        $origins = array();
        foreach ($this->composer->getPackage()->getRepositories() as $repo) {
            if (is_array($repo) && isset($repo['url'], $repo['type']) && is_string($repo['url'])
                && in_array($repo['type'], array('vcs', 'git', 'github', 'gitlab', 'bitbucket', 'forgejo'), true)
                && preg_match('{^https?://}i', $repo['url'])) {
                $origin = Url::getOrigin($this->composer->getConfig(), $repo['url']);
                if (isset($this->served[$origin])) {
                    $origins[$origin] = 1;
                }
            }
        }

        return $origins;
    }

    /** The directory of the composer.json in use, resolved through symlinks. */
    /** The fix when the socket COMPOSER_KEYD_SOCK names (a container's) is another uid's, else null. */
    private function grantFix(): ?string
    {
        $socket = getenv('COMPOSER_KEYD_SOCK');
        $owner = is_string($socket) && $socket !== '' ? @fileowner($socket) : false;
        if ($owner === false || !function_exists('posix_geteuid') || $owner === posix_geteuid()) {
            return null;
        }
        $me = posix_geteuid();

        return sprintf('this is uid %d and the daemon serves uid %d: on the host run `composer-keyd grant add --uid %d --project %s`', $me, $owner, $me, $this->project === null ? 'DIR' : $this->project);
    }

    /** getVersion() resolves a source checkout's placeholder; Composer 2.0 lacks it. */
    private static function composerVersion(): string
    {
        return method_exists(Composer::class, 'getVersion') ? Composer::getVersion() : Composer::VERSION;
    }

    private static function projectRoot(): ?string
    {
        $dir = dirname(Factory::getComposerFile());
        $real = @realpath($dir);
        if (is_string($real)) {
            return $real;
        }
        $cwd = @getcwd();

        return is_string($cwd) ? $cwd : null;
    }
}
