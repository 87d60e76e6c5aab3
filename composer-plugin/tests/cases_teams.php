<?php

/*
 * Team sources (OpenBao/Vault) as the plugin sees them: the run's first lookup of an
 * origin reads team entries through, and the post-failure refresh is the second line, for
 * a pair that changed after the run began.
 */

use Symfony\Component\Console\Output\OutputInterface;

if (!function_exists('activate_with')) {
    // cases_plugin.php already failed, naming the Debian package.
    return;
}

/** A daemon reply for repo.magento.com with the pair $user / $pass. */
function magento_reply(string $user, string $pass): array
{
    return array('body' => json_encode(array('origin' => 'repo.magento.com', 'project' => null, 'credential' => array('type' => 'http-basic', 'username' => $user, 'password' => $pass))));
}

test('teams: a pair changed during a failed run is refreshed once, and the line says to run again', function () {
    $repos = array(array('type' => 'composer', 'url' => 'https://repo.magento.com'));
    list($out, $auth, , $log) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => json_encode(array('origins' => array(
                array('origin' => 'repo.magento.com', 'type' => 'http-basic', 'project' => null, 'enabled' => true),
            ), 'teams' => true))),
            'GET /v1/credentials/repo.magento.com' . q($p) . '&fresh=1' => magento_reply('old-user', 'old-pass'),
            'GET /v1/credentials/repo.magento.com' . q($p) . '&refresh=1' => magento_reply('new-user', 'new-pass'),
        );
    }, OutputInterface::VERBOSITY_NORMAL, array(), $repos, null, null, function ($plugin) {
        // An install whose download with the served pair never completed (a 401): what
        // the command and pre-file-download events leave behind.
        $fail = function () {
            $this->command = 'install';
            $this->pending['https://repo.magento.com/packages.json'] = 'repo.magento.com';
        };
        \Closure::bind($fail, $plugin, \ComposerKeyd\Plugin::class)();
        $plugin->onShutdown();
    });
    same(array('username' => 'old-user', 'password' => 'old-pass'), $auth['repo.magento.com'], 'the run used what its start read');
    $seen = array_map(function ($r) {
        return $r['request'];
    }, $log);
    same(array('GET /v1/origins', 'GET /v1/credentials/repo.magento.com', 'GET /v1/credentials/repo.magento.com'), array_map(function ($s) {
        return strstr($s, '?', true);
    }, $seen));
    contains('&fresh=1', $seen[1]);
    contains('&refresh=1', $seen[2]);
    contains('the credential for repo.magento.com changed in its source; run the command again', $out);
    same(false, strpos($out, 'new-pass'), 'no secret in the line');
});
