// Xen Orchestra's Containers workflow, driven with XO's own XAPI client (npm
// `xen-api`, the connector xo-server uses) and XML parser (fast-xml-parser with
// xo-server's options), for tests/integration/test_xo_client.py.
//
//   node xo-containers.mjs CONFIG.json
//
// CONFIG: {modules, url, user, password, transport, vms: [uuid...], actOn: {vm,
// name}, plan: [action...], timeout (seconds), register (bool)}. `modules` is the
// folder holding node_modules (a cache outside the repository).
//
// What xo-server and xo-web do, as this script repeats it:
// * connect: JSON-RPC first, XML-RPC when the host does not answer JSON
//   (transport `auto`), then follow the object cache (event.inject, event.from);
// * plugin calls: host.call_plugin on the VM's resident host (else the pool
//   master), plugin `xscontainer`, args {vmuuid, container} with `container`
//   undefined for register/deregister (the transport drops it); the value is
//   ignored;
// * the VM's `docker`: undefined without other-config `xscontainer-monitor`,
//   {enabled: false} when it is `False`, else {enabled: true, info, containers,
//   version} parsed from docker_info, docker_ps (`docker_ps.item`, one or many)
//   and docker_version;
// * the Containers tab: name (entry.names), command, created (entry.created
//   seconds), status, and buttons by exact status: `Up` -> stop, restart, pause;
//   `Up (Paused)` -> unpause (Resume); `Exited (137)` -> start. Every button
//   passes entry.container.
//
// Protocol with the Python test (JSON lines): this script prints
// {"type": "client", ...} once, then {"type": "view", "step", "vm", "docker",
// "table"} and waits for a line `ok` on stdin before going on; {"type": "done"}
// at the end, {"type": "error", "message"} (exit status 1) on failure.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const require = createRequire(join(config.modules, 'node_modules', 'package.json'))
const versionOf = name => JSON.parse(readFileSync(require.resolve(name + '/package.json'), 'utf8')).version
const { createClient } = await import(pathToFileURL(require.resolve('xen-api')).href)
const { XMLParser } = require('fast-xml-parser')

const TIMEOUT = (config.timeout ?? 60) * 1e3

// xo-server's parseXml options: attributes kept without prefix, values as text
const parser = new XMLParser({
  attributeNamePrefix: '',
  ignoreAttributes: false,
  ignoreDeclaration: true,
  parseTagValue: false,
})
const parseXml = text => parser.parse(text)
const ensureArray = value => (value === undefined ? [] : Array.isArray(value) ? value : [value])

// the buttons xo-web's Containers tab shows for a status (exact comparisons)
const BUTTONS = { Up: ['stop', 'restart', 'pause'], 'Up (Paused)': ['unpause'], 'Exited (137)': ['start'] }
// the status each button leads to
const AFTER = { stop: 'Exited (137)', start: 'Up', pause: 'Up (Paused)', unpause: 'Up', restart: 'Up' }

const emit = message => process.stdout.write(JSON.stringify(message) + '\n')
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

function dockerOf(vm) {
  const other = vm.other_config
  const flag = other['xscontainer-monitor']
  if (flag === undefined || flag === '') {
    return undefined
  }
  if (flag === 'False') {
    return { enabled: false }
  }
  const field = (key, root) => {
    const text = other[key]
    return text === undefined ? undefined : parseXml(text)[root]
  }
  const ps = field('docker_ps', 'docker_ps')
  return {
    enabled: true,
    info: field('docker_info', 'docker_info'),
    containers: ps === undefined ? undefined : ensureArray(ps.item),
    version: field('docker_version', 'docker_version'),
  }
}

function tableOf(docker) {
  return (docker?.containers ?? []).map(({ entry }) => ({
    name: entry.names,
    command: entry.command,
    created: entry.created,
    status: entry.status,
    container: entry.container,
    buttons: BUTTONS[entry.status] ?? [],
  }))
}

const xapi = createClient({
  url: config.url,
  auth: { user: config.user, password: config.password },
  allowUnauthorized: true,
  transport: config.transport ?? 'auto',
})

function vmByUuid(uuid) {
  const vm = Object.values(xapi.objects.all).find(o => o.$type === 'VM' && o.uuid === uuid)
  if (vm === undefined) {
    throw new Error('VM ' + uuid + ' is not in the object cache')
  }
  return vm
}

// resolves once `check(vm)` is true for the cached VM, as the cache's events come in
function waitFor(uuid, what, check) {
  return new Promise((resolve, reject) => {
    const test = () => {
      const vm = vmByUuid(uuid)
      if (check(vm)) {
        finish()
        resolve(vm)
      }
    }
    const timer = setTimeout(() => {
      finish()
      const docker = dockerOf(vmByUuid(uuid))
      reject(new Error(`timed out after ${TIMEOUT / 1e3}s waiting for ${what} on VM ${uuid}; ` +
        `it shows ${JSON.stringify(tableOf(docker))}`))
    }, TIMEOUT)
    const finish = () => {
      clearTimeout(timer)
      xapi.objects.removeListener('add', test)
      xapi.objects.removeListener('update', test)
    }
    xapi.objects.on('add', test)
    xapi.objects.on('update', test)
    test()
  })
}

function pluginCall(uuid, fn, container) {
  const vm = vmByUuid(uuid)
  const host = vm.$resident_on || xapi.pool.$master
  return xapi.call('host.call_plugin', host.$ref, 'xscontainer', fn, { vmuuid: vm.uuid, container })
}

async function show(step, uuid) {
  const docker = dockerOf(vmByUuid(uuid))
  emit({ type: 'view', step, vm: uuid, docker, table: tableOf(docker) })
  const answer = await lines.next()
  if (answer.done || answer.value.trim() !== 'ok') {
    throw new Error('the test stopped at ' + step + ': ' + (answer.value ?? 'end of input'))
  }
}

const hasData = vm => {
  const docker = dockerOf(vm)
  return docker?.enabled === true && docker.containers !== undefined && docker.info !== undefined &&
    docker.version !== undefined
}

async function main() {
  await xapi.connect()
  await xapi.objectsFetched
  emit({
    type: 'client',
    'xen-api': versionOf('xen-api'),
    'fast-xml-parser': versionOf('fast-xml-parser'),
    node: process.version,
    transport: config.transport ?? 'auto',
  })

  if (config.register) {
    for (const uuid of config.vms) {
      await pluginCall(uuid, 'register') // XO drops `container` for register
    }
  }
  for (const uuid of config.vms) {
    await waitFor(uuid, 'docker_ps, docker_info and docker_version', hasData)
    await show('registered', uuid)
  }

  const target = config.actOn
  for (const action of config.plan ?? []) {
    const row = tableOf(dockerOf(vmByUuid(target.vm))).find(r => r.name === target.name)
    if (row === undefined) {
      throw new Error('no container ' + target.name + ' in the Containers tab')
    }
    if (!row.buttons.includes(action)) {
      throw new Error(`XO offers no ${action} button for ${target.name} (status ${JSON.stringify(row.status)})`)
    }
    await pluginCall(target.vm, action, row.container)
    // the view once the cache holds all three keys again: the monitor rewrites a key as a
    // remove then an add, and the cache shows each step (docker_info refreshed a little
    // after docker_ps can be caught between the two)
    await waitFor(target.vm, `${target.name} to show ${AFTER[action]} after ${action}`, vm =>
      hasData(vm) &&
      tableOf(dockerOf(vm)).some(r => r.name === target.name && r.status === AFTER[action]))
    await show('after ' + action, target.vm)
  }

  if (config.deregister) {
    for (const uuid of config.vms) {
      await pluginCall(uuid, 'deregister')
      await waitFor(uuid, 'docker.enabled === false', vm => dockerOf(vm)?.enabled === false &&
        !('docker_ps' in vm.other_config))
      await show('deregistered', uuid)
    }
  }
  emit({ type: 'done' })
}

try {
  await main()
  await xapi.disconnect()
  process.exit(0)
} catch (error) {
  emit({ type: 'error', message: String(error?.stack ?? error), code: error?.code, params: error?.params })
  process.exit(1)
}
