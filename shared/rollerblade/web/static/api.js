// The /v1 API, called with the bearer token kept in sessionStorage (never in a URL).
// Every failure becomes an ApiError carrying the API's one error shape
// {"error": {"status", "type", "message", ...}}; a 401 also announces "rollerblade:logout".

const KEY = 'rollerblade.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  save: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(detail) {
    super(detail.message || `HTTP ${detail.status}`);
    this.status = detail.status;
    this.type = detail.type;
    this.detail = detail;
  }
}

export function authHeaders() {
  const token = session.token();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A path with each segment encoded: "sub-01/anat/x.nii.gz" keeps its slashes. */
export function segments(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** The route of an indexed file's bytes (fetched with the auth header). */
export function fileRoute(dataset, path) {
  return `/files/${encodeURIComponent(dataset)}/${segments(path)}`;
}

async function failure(response) {
  let detail;
  try {
    detail = (await response.json()).error;
  } catch {
    detail = null;
  }
  if (!detail || typeof detail !== 'object') {
    detail = { status: response.status, type: 'http_error', message: `${response.status} ${response.statusText}` };
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent('rollerblade:logout', { detail }));
  }
  return new ApiError(detail);
}

/**
 * Call one /v1 route. options: method, params (query-string values; empty ones left
 * out), body (sent as JSON), as ('json' | 'text' | 'blob'), signal.
 */
export async function api(route, { method = 'GET', params, body, as = 'json', signal } = {}) {
  const url = new URL(`/v1${route}`, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = { ...authHeaders() };
  const init = { method, headers, signal, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError({ status: 0, type: 'network', message: `The server did not answer (${err.message}).` });
  }
  if (!response.ok) throw await failure(response);
  if (as === 'text') return response.text();
  if (as === 'blob') return response.blob();
  return response.json();
}

/** A file's bytes as an object URL (for <img> and downloads); revoke it when done. */
export async function objectUrl(route, options) {
  const blob = await api(route, { ...options, as: 'blob' });
  return URL.createObjectURL(blob);
}

/** Save a Blob under a file name, through an object URL and <a download>. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
