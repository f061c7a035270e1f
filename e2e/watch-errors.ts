import { test, type BrowserContext, type Page } from '@playwright/test';

/**
 * Any console error, uncaught exception or request to another origin fails a test: a studio that
 * logs errors is broken, and one that talks to the network breaks its promise that files stay local.
 * Requests are watched on the whole browser context, so the workers' fetches count too.
 * `requests` lists every URL asked for, so a test can check the watch saw the traffic it expects.
 */
export function watchErrors(page: Page, context: BrowserContext = page.context()): { errors: string[]; requests: string[] } {
  const errors: string[] = [];
  const requests: string[] = [];
  const origin = new URL(test.info().project.use.baseURL!).origin;
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('websocket', (ws) => errors.push(`web socket opened: ${ws.url()}`));
  context.on('request', (r) => {
    requests.push(r.url());
    const url = new URL(r.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== origin) errors.push(`request to another origin: ${r.url()}`);
  });
  return { errors, requests };
}
