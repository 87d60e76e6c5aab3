<?php

/*
 * A fake composer-keyd daemon for the plugin's tests: listens on a Unix
 * socket, logs each request as a JSON line, and answers from a spec file.
 *
 * Usage: php fake_daemon.php SOCKET SPEC.json LOG
 * SPEC maps "METHOD /path?query" (or "*") to one of:
 *   {"status": 200, "body": "..."}            a normal reply with Content-Length
 *   {"status": 200, "body": "...", "chunked": true}
 *   {"status": 200, "body": "...", "keep_open": true}   reply, then keep the connection open
 *   {"raw": "..."}                             these bytes, then close
 *   {"hang": true}                             read the request, never answer
 *   {"close": true}                            close without a byte
 *   {"bytes": N}                               a 200 whose body is N bytes
 */

list(, $socket, $specFile, $log) = $argv;
$spec = json_decode((string) file_get_contents($specFile), true);
@unlink($socket);
$server = stream_socket_server('unix://' . $socket, $errno, $errstr);
if (!$server) {
    fwrite(STDERR, "fake daemon: cannot listen on $socket: $errstr\n");
    exit(2);
}
// The socket file appears at bind(), a moment before listen(): tests wait for this file instead.
file_put_contents($socket . '.ready', '');
// Bounded: a test never needs more than this many connections from one daemon.
for ($served = 0; $served < 200; $served++) {
    $conn = @stream_socket_accept($server, 60);
    if (!$conn) {
        break;
    }
    $raw = '';
    while (strpos($raw, "\r\n\r\n") === false && !feof($conn)) {
        $raw .= (string) fread($conn, 8192);
    }
    list($head, $body) = explode("\r\n\r\n", $raw, 2) + array('', '');
    if (preg_match('{\r\ncontent-length:\s*(\d+)}i', $head, $m)) {
        while (strlen($body) < (int) $m[1] && !feof($conn)) {
            $body .= (string) fread($conn, 8192);
        }
    }
    $line = strtok($head, "\r\n");
    $parts = explode(' ', (string) $line);
    $key = (isset($parts[0]) ? $parts[0] : '') . ' ' . (isset($parts[1]) ? $parts[1] : '');
    file_put_contents($log, json_encode(array('request' => $key, 'head' => $head, 'body' => $body)) . "\n", FILE_APPEND);
    $r = isset($spec[$key]) ? $spec[$key] : (isset($spec['*']) ? $spec['*'] : array('status' => 404, 'body' => '{"error":{"kind":"unknown-route","message":"no route"}}'));
    if (!empty($r['hang'])) {
        sleep(30);
    } elseif (!empty($r['close'])) {
        // nothing
    } elseif (isset($r['raw'])) {
        fwrite($conn, $r['raw']);
    } else {
        $status = isset($r['status']) ? (int) $r['status'] : 200;
        $payload = isset($r['bytes']) ? str_repeat('x', (int) $r['bytes']) : (string) $r['body'];
        $out = "HTTP/1.1 $status X\r\ncontent-type: application/json\r\n";
        if (!empty($r['chunked'])) {
            $out .= "transfer-encoding: chunked\r\n\r\n";
            foreach (str_split($payload, 7) as $piece) {
                $out .= dechex(strlen($piece)) . "\r\n" . $piece . "\r\n";
            }
            $out .= "0\r\n\r\n";
        } else {
            $out .= 'content-length: ' . strlen($payload) . "\r\n\r\n" . $payload;
        }
        fwrite($conn, $out);
        if (!empty($r['keep_open'])) {
            sleep(30);
        }
    }
    fclose($conn);
}
