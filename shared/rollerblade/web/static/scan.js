// One scan: NiiVue shows the image with a mask or segmentation derivative of the same
// subject and session as an overlay (slice layout, opacity and colormap controls); beside
// it the sidecar metadata with the file each key was inherited from, the header facts and,
// for a derivative, its provenance. NiiVue is loaded with the view, so the metadata still
// shows when the viewer cannot start (no WebGL2).

import { api, authHeaders, fileRoute } from './api.js';
import { analysisOf, basename, field, fmt, guarded, h, scanHref, select, table } from './dom.js';

const PROVENANCE = ['RollerbladeJob', 'AnalysisVersion', 'ImageDigest', 'Params', 'Sources', 'StartTime', 'EndTime', 'ExitCode'];
const LAYOUTS = [['multiplanar', 'Multiplanar'], ['axial', 'Axial'], ['coronal', 'Coronal'], ['sagittal', 'Sagittal']];
const COLORMAPS = ['red', 'green', 'blue', 'warm', 'hot', 'winter', 'viridis', 'freesurfer'];

function quote(value) {
  return /^[A-Za-z0-9_.+-]+$/.test(value) ? value : `"${value.replace(/"/g, '\\"')}"`;
}

/** The query finding mask and segmentation derivatives of a record's subject/session. */
export function overlayQuery(record) {
  const parts = [`dataset=${quote(record.dataset)}`, `sub=${quote(record.entities.sub)}`];
  if (record.entities.ses) parts.push(`ses=${quote(record.entities.ses)}`);
  parts.push('exists(analysis)', 'extension=.nii.gz', '(suffix=mask OR suffix=dseg)');
  return parts.join(' AND ');
}

function extensionOf(path) {
  const name = basename(path);
  return name.endsWith('.nii.gz') ? '.nii.gz' : name.slice(name.lastIndexOf('.'));
}

function volume(record, extra) {
  return {
    url: `/v1${fileRoute(record.dataset, record.path)}`,
    name: basename(record.path) || `volume${extensionOf(record.path)}`,
    headers: authHeaders(),
    ...extra,
  };
}

/** The image's bytes, a .nii.gz unzipped as it downloads (the browser's own gzip, off the
 * main thread), with the name NiiVue reads its format from; null on any failure. */
async function prefetch(dataset, path) {
  try {
    const response = await fetch(`/v1${fileRoute(dataset, path)}`, { headers: authHeaders() });
    if (!response.ok) return null;
    const name = basename(path);
    if (!name.endsWith('.gz')) return { bytes: await response.arrayBuffer(), name };
    const unzipped = new Response(response.body.pipeThrough(new DecompressionStream('gzip')));
    return { bytes: await unzipped.arrayBuffer(), name: name.slice(0, -3) };
  } catch {
    return null;
  }
}

function sourceLink(source) {
  const match = /^bids:([^:]+):(.+)$/.exec(source);
  return match ? h('a', { href: scanHref(match[1], match[2]) }, `${match[1]}/${match[2]}`) : h('code', {}, source);
}

function metadataTable(record) {
  const sources = record.meta_sources || {};
  const keys = Object.keys(record.meta).filter((k) => !PROVENANCE.includes(k) && k !== 'Logs');
  return table('Sidecar metadata', [
    { label: 'Key', value: (k) => k },
    { label: 'Value', value: (k) => fmt(record.meta[k]) },
    { label: 'Inherited from', value: (k) => (sources[k] ? h('code', {}, sources[k]) : '—') },
  ], keys, { empty: 'No sidecar metadata.' });
}

function factsTable(caption, facts) {
  return table(caption, [
    { label: 'Fact', value: ([k]) => k },
    { label: 'Value', value: ([, v]) => (Array.isArray(v) ? v.join(' × ') : fmt(v)) },
  ], Object.entries(facts || {}), { empty: 'None.' });
}

function provenance(record) {
  const meta = record.meta;
  const rows = [
    ['Analysis', `${analysisOf(record.path)} ${meta.AnalysisVersion || ''}`],
    ['Job', meta.RollerbladeJob ? h('a', { href: `#/runs/${encodeURIComponent(analysisOf(record.path))}`, title: meta.RollerbladeJob }, h('code', {}, meta.RollerbladeJob.slice(0, 12))) : '—'],
    ['Image digest', h('code', { class: 'wrap' }, meta.ImageDigest || '—')],
    ['Params', h('code', { class: 'wrap' }, JSON.stringify(meta.Params || {}))],
    ['Sources', h('ul', { class: 'plain' }, (meta.Sources || []).map((src) => h('li', {}, sourceLink(src))))],
    ['Ran', meta.StartTime ? `${meta.StartTime} → ${meta.EndTime || ''}` : '—'],
  ];
  return h('section', { class: 'card', 'aria-labelledby': 'prov-title' }, h('h2', { id: 'prov-title' }, 'Provenance'),
    h('dl', { class: 'pairs' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
}

export async function render(main, args) {
  const [dataset, ...rest] = args;
  const path = rest.join('/');
  if (!dataset || !path) {
    main.append(h('h1', {}, 'Scan'), h('p', {}, 'Open a scan from the ', h('a', { href: '#/query' }, 'query results'), '.'));
    return undefined;
  }
  // NiiVue (3 MB) and the image's bytes start loading while the record is fetched: the
  // download overlaps NiiVue's compilation and WebGL set-up. A failure shows in the viewer
  // (NiiVue then fetches the image itself).
  const niivue = import('./vendor/niivue.js');
  niivue.catch(() => {});
  const prefetched = /\.nii(\.gz)?$/.test(path) ? prefetch(dataset, path) : Promise.resolve(null);
  const record = await api(`/records/${encodeURIComponent(dataset)}/${path.split('/').map(encodeURIComponent).join('/')}`);
  const isDerivative = !!analysisOf(record.path);
  const canvas = h('canvas', { class: 'niivue', 'aria-label': `Slices of ${basename(record.path)}`, role: 'img' });
  const viewer = h('div', { class: 'viewer', 'data-state': 'loading' }, canvas);
  const layout = select(LAYOUTS, 'multiplanar');
  const overlaySelect = select([['', 'No overlay']], '');
  const opacity = h('input', { type: 'range', min: '0', max: '1', step: '0.05', value: '0.6' });
  const opacityValue = h('output', {}, '0.60');
  const colormap = select(COLORMAPS, 'red');
  const viewerState = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Loading the image…');
  const controls = h('div', { class: 'viewer-controls' },
    field('Slice layout', layout),
    field('Overlay', overlaySelect),
    h('div', { class: 'field' }, h('label', { for: 'overlay-opacity' }, 'Overlay opacity ', opacityValue), opacity),
    field('Overlay colormap', colormap));
  opacity.id = 'overlay-opacity';
  main.append(
    h('h1', {}, basename(record.path)),
    h('p', { class: 'muted' }, `${record.dataset} / ${record.path}`),
    h('div', { class: 'scan-layout' },
      h('section', { class: 'viewer-pane', 'aria-label': 'Viewer' }, viewer, controls, viewerState),
      h('div', { class: 'side-pane' },
        isDerivative ? provenance(record) : null,
        h('section', { class: 'card', 'aria-labelledby': 'meta-title' }, h('h2', { id: 'meta-title' }, 'Metadata'), metadataTable(record)),
        h('section', { class: 'card', 'aria-labelledby': 'header-title' }, h('h2', { id: 'header-title' }, 'Header'), factsTable('Header facts', record.image)),
        h('section', { class: 'card', 'aria-labelledby': 'who-title' }, h('h2', { id: 'who-title' }, 'Participant and session'),
          factsTable('Participant', record.participant), factsTable('Session', record.session)))),
  );

  let nv = null;
  let overlays = [];
  const applyLayout = () => {
    const types = { axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal, multiplanar: nv.sliceTypeMultiplanar };
    // each frame costs ~70 ms without a GPU: none for a layout already shown
    if (nv.opts.sliceType !== types[layout.value]) nv.setSliceType(types[layout.value]);
  };
  // NiiVue's calls (load, overlay, opacity, colormap, layout) draw the scene themselves: a
  // frame more here cost ~0.2 s without a GPU.
  const ready = (text) => {
    viewerState.textContent = text;
    viewer.dataset.state = 'ready';
  };
  async function showOverlay() {
    viewer.dataset.state = 'loading';
    while (nv.volumes.length > 1) nv.removeVolumeByIndex(nv.volumes.length - 1);
    const chosen = overlays.find((o) => o.path === overlaySelect.value);
    if (chosen) {
      await nv.addVolumeFromUrl(volume(chosen, { colormap: colormap.value, opacity: Number(opacity.value) }));
      ready(`Overlay: ${chosen.path}`);
    } else {
      ready('No overlay');
    }
  }
  const closed = { value: false };
  guarded(async () => {
    const { Niivue } = await niivue;
    if (closed.value) return;
    // A green crosshair: red is the overlay's colour.
    nv = new Niivue({ backColor: [0, 0, 0, 1], crosshairColor: [0.1, 0.8, 0.3, 1], show3Dcrosshair: false, isResizeCanvas: true, logLevel: 'error' });
    await nv.attachToCanvas(canvas);
    const got = await prefetched;
    const [, found] = await Promise.all([
      nv.loadVolumes([volume(record, got ? { colormap: 'gray', url: got.bytes, name: got.name } : { colormap: 'gray' })]),
      record.entities.sub && !isDerivative ? api('/records', { params: { query: overlayQuery(record), limit: 20 } }) : Promise.resolve({ records: [] }),
    ]);
    if (closed.value) return;
    overlays = found.records;
    for (const o of overlays) overlaySelect.append(h('option', { value: o.path }, `${analysisOf(o.path)}: ${o.entities.suffix}`));
    const mask = overlays.find((o) => o.entities.suffix === 'mask') || overlays[0];
    applyLayout();
    if (mask) {
      overlaySelect.value = mask.path;
      await showOverlay();
    } else {
      ready(isDerivative ? 'A derivative image' : 'No mask or segmentation of this session yet');
    }
  }).then(() => {
    if (!nv) viewerState.textContent = 'The viewer could not start.';
  });
  layout.addEventListener('change', () => {
    if (!nv) return;
    applyLayout();
    ready(viewerState.textContent);
  });
  overlaySelect.addEventListener('change', () => nv && guarded(showOverlay));
  opacity.addEventListener('input', () => {
    opacityValue.textContent = Number(opacity.value).toFixed(2);
    if (nv && nv.volumes.length > 1) {
      nv.setOpacity(1, Number(opacity.value));
      ready(viewerState.textContent);
    }
  });
  colormap.addEventListener('change', () => {
    if (nv && nv.volumes.length > 1) {
      nv.setColormap(nv.volumes[1].id, colormap.value);
      ready(viewerState.textContent);
    }
  });
  return () => {
    closed.value = true;
    try {
      if (nv) nv.cleanup();
    } catch {
      /* already gone */
    }
    const gl = canvas.getContext('webgl2');
    const lose = gl && gl.getExtension('WEBGL_lose_context');
    if (lose) lose.loseContext();
  };
}
