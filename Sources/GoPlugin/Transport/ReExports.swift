@_exported public import GoPluginGob
// net/rpc plugins are described with NetRPCService, NetRPCClient and gob's types: `import
// GoPlugin` reaches them too.
@_exported public import GoPluginNetRPC
// The transport is a module of its own, below everything that knows about plugins, but its
// public types (PluginTransport, PluginClientTransport, PluginBytes) are part of this library's
// API: `import GoPlugin` alone must keep reaching them. A re-export, rather than public
// typealiases, keeps them the same types with their own documentation, and keeps the members
// they declare in extensions visible to clients built with MemberImportVisibility, which would
// otherwise have to import GoPluginTransport themselves.
@_exported public import GoPluginTransport
