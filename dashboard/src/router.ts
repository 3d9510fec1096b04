/** Hash routes (`#/instances/3`): the gateway serves one index.html, the browser keeps the place. */
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'instances' }
  | { name: 'instance'; id: number }
  | { name: 'webhooks'; id: number }
  | { name: 'admin-nodes' }
  | { name: 'admin-users' }
  | { name: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\/+$/, '') || '/instances';
  if (path === '/instances') return { name: 'instances' };
  let m = /^\/instances\/(\d+)$/.exec(path);
  if (m) return { name: 'instance', id: Number(m[1]) };
  m = /^\/instances\/(\d+)\/webhooks$/.exec(path);
  if (m) return { name: 'webhooks', id: Number(m[1]) };
  if (path === '/admin/nodes') return { name: 'admin-nodes' };
  if (path === '/admin/users') return { name: 'admin-users' };
  return { name: 'not-found', path };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const navigate = (hash: string) => {
  location.hash = hash;
};
