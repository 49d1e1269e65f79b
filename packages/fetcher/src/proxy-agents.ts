import type { Agent as HttpAgent } from 'node:http';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import type { AgentConnectOpts } from 'agent-base';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';

/**
 * `https-proxy-agent` drops the target's host before its TLS handshake and sets a servername only
 * for names, so an https target given by IP address is checked against `localhost` and refused.
 * This checks it against its own address, as a direct request does.
 */
class AddressCheckingHttpsProxyAgent extends HttpsProxyAgent<string> {
  override connect(req: Parameters<HttpsProxyAgent<string>['connect']>[0], opts: AgentConnectOpts) {
    const host = opts.host;
    if (!opts.secureEndpoint || host === undefined || isIP(host) === 0) return super.connect(req, opts);
    // The check got asks for (Node's own by default), given the target's address instead of `localhost`.
    const check = opts.checkServerIdentity ?? checkServerIdentity;
    return super.connect(req, { ...opts, checkServerIdentity: (_name, cert) => check(host, cert) });
  }
}

/**
 * The agents of one proxy: plain requests forwarded (`http-proxy-agent`), https ones tunnelled
 * with CONNECT (`https-proxy-agent`, the maintained agents by TooTallNate); both keep their
 * connections to the proxy alive.
 */
export function proxyAgents(proxyUrl: string, options: ConstructorParameters<typeof HttpAgent>[0]) {
  return {
    http: new HttpProxyAgent(proxyUrl, options),
    https: new AddressCheckingHttpsProxyAgent(proxyUrl, options),
  };
}
