// SPDX-License-Identifier: Apache-2.0
/*
 * HdlInteropCheck: drive the CNRI Handle.Net Java client library (net.handle.hdllib, 9.2.0 built
 * from source or the prebuilt 7.3.1 handle.jar) against a running idnoded, and run response bytes
 * produced elsewhere through the library's own decoder.
 *
 * This file is ours; it only *calls* the public hdllib API. The library itself is never part of
 * this repository: see tests/interop/README.md for how to obtain and build it.
 *
 *   java HdlInteropCheck net --port P [--host 127.0.0.1] [--http-port H] --handle PFX/SFX
 *        [--missing PFX/NOPE] [--protos udp,tcp,http] [--version 2.11] [--timeout-ms 3000]
 *        [--no-resolver] [--no-certify] [--trace]
 *   java HdlInteropCheck decode FILE...   (hex or `xxd -g1` dump of one response, with or without
 *                                          the 20-byte envelope; `--no-envelope` forces the latter)
 *
 * Every check prints one "PASS name: detail" or "FAIL name: exception" line; values are printed
 * as the library decoded them. The exit status is 0 only when no check failed (skips are not
 * failures), 1 when at least one failed, 2 on a usage error.
 */

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import net.handle.hdllib.AbstractMessage;
import net.handle.hdllib.AbstractRequest;
import net.handle.hdllib.AbstractResponse;
import net.handle.hdllib.AddValueRequest;
import net.handle.hdllib.ChallengeResponse;
import net.handle.hdllib.Common;
import net.handle.hdllib.Configuration;
import net.handle.hdllib.DeleteHandleRequest;
import net.handle.hdllib.Encoder;
import net.handle.hdllib.ErrorResponse;
import net.handle.hdllib.GenericRequest;
import net.handle.hdllib.GetSiteInfoResponse;
import net.handle.hdllib.HandleResolver;
import net.handle.hdllib.HandleValue;
import net.handle.hdllib.Interface;
import net.handle.hdllib.MessageEnvelope;
import net.handle.hdllib.ResolutionRequest;
import net.handle.hdllib.ResolutionResponse;
import net.handle.hdllib.ServerInfo;
import net.handle.hdllib.SiteInfo;
import net.handle.hdllib.Util;

public final class HdlInteropCheck {
	private static final int ENVELOPE_LEN = 20;

	private int passed;
	private int failed;
	private int skipped;

	/* ---------------------------------------------------------------- reporting */

	private void pass(String name, String detail)
	{
		passed++;
		System.out.println("PASS " + name + (detail.isEmpty() ? "" : ": " + detail));
	}

	private void skip(String name, String why)
	{
		skipped++;
		System.out.println("SKIP " + name + ": " + why);
	}

	private void fail(String name, String why)
	{
		failed++;
		System.out.println("FAIL " + name + ": " + why);
	}

	private void fail(String name, Throwable t)
	{
		failed++;
		System.out.println("FAIL " + name + ": " + describe(t));
	}

	/** Exception class and message, its causes, and the top library frames. */
	private static String describe(Throwable t)
	{
		StringBuilder sb = new StringBuilder();
		Throwable cur = t;
		for (int depth = 0; cur != null && depth < 4; depth++, cur = cur.getCause()) {
			if (depth > 0)
				sb.append("\n       caused by ");
			sb.append(cur.getClass().getName()).append(": ").append(cur.getMessage());
			StackTraceElement[] st = cur.getStackTrace();
			for (int i = 0; i < st.length && i < 4; i++)
				sb.append("\n         at ").append(st[i]);
		}
		return sb.toString();
	}

	/* ---------------------------------------------------------------- helpers */

	private static String str(byte[] b)
	{
		return b == null ? "(null)" : new String(b, StandardCharsets.UTF_8);
	}

	private static String hex(byte[] b)
	{
		if (b == null)
			return "(null)";
		StringBuilder sb = new StringBuilder(b.length * 2);
		for (byte x : b)
			sb.append(String.format("%02x", x & 0xff));
		return sb.toString();
	}

	private static String formatValue(HandleValue v)
	{
		String data;
		String type = v.getTypeAsString();
		byte[] raw = v.getData();
		boolean printable = raw != null;
		if (raw != null) {
			for (byte x : raw) {
				int c = x & 0xff;
				if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
					printable = false;
					break;
				}
			}
		}
		if (printable)
			data = "\"" + v.getDataAsString() + "\"";
		else
			data = "0x" + hex(raw);
		return String.format("index=%d type=%s ttl=%d%s perms=%s data=%s",
		                     v.getIndex(), type, v.getTTL(),
		                     v.getTTLType() == HandleValue.TTL_TYPE_ABSOLUTE ? "(abs)" : "",
		                     v.getPermissionString(), data);
	}

	private static void printValues(HandleValue[] vals)
	{
		for (HandleValue v : vals)
			System.out.println("       " + formatValue(v));
	}

	private static String rcName(int rc)
	{
		switch (rc) {
		case AbstractMessage.RC_SUCCESS: return "RC_SUCCESS";
		case AbstractMessage.RC_ERROR: return "RC_ERROR";
		case AbstractMessage.RC_SERVER_TOO_BUSY: return "RC_SERVER_TOO_BUSY";
		case AbstractMessage.RC_PROTOCOL_ERROR: return "RC_PROTOCOL_ERROR";
		case AbstractMessage.RC_OPERATION_NOT_SUPPORTED: return "RC_OPERATION_NOT_SUPPORTED";
		case AbstractMessage.RC_HANDLE_NOT_FOUND: return "RC_HANDLE_NOT_FOUND";
		case AbstractMessage.RC_VALUES_NOT_FOUND: return "RC_VALUES_NOT_FOUND";
		case AbstractMessage.RC_SERVER_NOT_RESP: return "RC_SERVER_NOT_RESP";
		case AbstractMessage.RC_SERVICE_REFERRAL: return "RC_SERVICE_REFERRAL";
		case AbstractMessage.RC_AUTHENTICATION_NEEDED: return "RC_AUTHENTICATION_NEEDED";
		default: return "RC_" + rc;
		}
	}

	private static String describeResponse(AbstractResponse r)
	{
		String s = "opCode=" + r.opCode + " rc=" + rcName(r.responseCode) + " version="
		           + r.majorProtocolVersion + "." + r.minorProtocolVersion + " reqId=" + r.requestId
		           + " serial=" + r.siteInfoSerial + " expires=" + r.expiration;
		if (r instanceof ErrorResponse)
			s += " message=\"" + str(((ErrorResponse) r).message) + "\"";
		return s;
	}

	/* ---------------------------------------------------------------- network checks */

	private static final class NetOptions {
		String host = "127.0.0.1";
		int port = -1;
		int httpPort = -1;
		String handle;
		String missing;
		List<String> protos = new ArrayList<>(Arrays.asList("udp", "tcp", "http"));
		byte major = Common.MAJOR_VERSION;
		byte minor = Common.MINOR_VERSION;
		int timeoutMs = 3000;
		boolean resolver = true;
		boolean certify = true;
		boolean trace;
	}

	private HandleResolver resolver;
	private NetOptions opt;
	private ServerInfo server;
	private final Map<String, Interface> ifaces = new LinkedHashMap<>();
	private SiteInfo site;
	private HandleValue[] reference;

	private static byte protocolCode(String p)
	{
		switch (p) {
		case "udp": return Interface.SP_HDL_UDP;
		case "tcp": return Interface.SP_HDL_TCP;
		case "http": return Interface.SP_HDL_HTTP;
		default: throw new IllegalArgumentException("unknown protocol " + p);
		}
	}

	/**
	 * Send as opt.major.opt.minor and suggest the same (hdllib 9 has suggest fields, which default to
	 * its own maximum; 7.x has none), so that an older client is emulated faithfully.
	 */
	private void prepare(AbstractRequest req)
	{
		req.majorProtocolVersion = opt.major;
		req.minorProtocolVersion = opt.minor;
		setByteField(req, "suggestMajorProtocolVersion", opt.major);
		setByteField(req, "suggestMinorProtocolVersion", opt.minor);
	}

	private static void setByteField(Object o, String field, byte v)
	{
		try {
			o.getClass().getField(field).setByte(o, v);
		} catch (NoSuchFieldException e) {
			/* older library: nothing to set */
		} catch (IllegalAccessException e) {
			throw new IllegalStateException(e);
		}
	}

	/** Send through HandleResolver.sendRequestToInterface and apply the checks every reply gets. */
	private AbstractResponse send(AbstractRequest req, String proto, ServerInfo srv) throws Exception
	{
		AbstractResponse r = resolver.sendRequestToInterface(req, srv, ifaces.get(proto));
		if (r == null)
			throw new IllegalStateException("library returned no response");
		long now = System.currentTimeMillis() / 1000;
		if (r.requestId != req.requestId)
			throw new IllegalStateException("request id not echoed: sent " + req.requestId + ", got "
			                                + r.requestId);
		if (r.expiration <= now)
			throw new IllegalStateException("expiration " + r.expiration + " is not in the future (now "
			                                + now + ")");
		if (r.majorProtocolVersion > opt.major
		    || (r.majorProtocolVersion == opt.major && r.minorProtocolVersion > opt.minor))
			throw new IllegalStateException("response version " + r.majorProtocolVersion + "."
			                                + r.minorProtocolVersion + " above the suggested "
			                                + opt.major + "." + opt.minor);
		if (r.opCode != req.opCode)
			throw new IllegalStateException("response opCode " + r.opCode + " != request " + req.opCode);
		return r;
	}

	private ResolutionResponse expectValues(AbstractResponse r) throws Exception
	{
		if (r.responseCode != AbstractMessage.RC_SUCCESS || !(r instanceof ResolutionResponse))
			throw new IllegalStateException("expected values, got " + r.getClass().getSimpleName()
			                                + " " + describeResponse(r));
		return (ResolutionResponse) r;
	}

	private static ResolutionRequest resolution(String handle, String[] types, int[] indexes)
	{
		byte[][] t = null;
		if (types != null) {
			t = new byte[types.length][];
			for (int i = 0; i < types.length; i++)
				t[i] = Util.encodeString(types[i]);
		}
		return new ResolutionRequest(Util.encodeString(handle), t, indexes, null);
	}

	private void checkResolve(String proto)
	{
		String name = proto + "/resolve";
		try {
			ResolutionRequest req = resolution(opt.handle, null, null);
			prepare(req);
			AbstractResponse r = send(req, proto, server);
			ResolutionResponse rr = expectValues(r);
			if (!str(rr.handle).equalsIgnoreCase(opt.handle))
				throw new IllegalStateException("reply names handle \"" + str(rr.handle) + "\"");
			HandleValue[] vals = rr.getHandleValues();
			if (vals.length == 0)
				throw new IllegalStateException("RC_SUCCESS with zero values");
			pass(name, opt.handle + ": " + vals.length + " value(s), " + describeResponse(r));
			printValues(vals);
			if (reference == null)
				reference = vals;
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private void checkDigest(String proto)
	{
		String name = proto + "/resolve-with-request-digest";
		if (opt.major == 2 && opt.minor == 0) {
			/* hdllib does not put the RD flag into 2.0 requests, yet would check the reply */
			skip(name, "hdllib sends no RD flag at protocol 2.0");
			return;
		}
		try {
			ResolutionRequest req = resolution(opt.handle, null, null);
			prepare(req);
			req.returnRequestDigest = true;
			AbstractResponse r = send(req, proto, server);
			expectValues(r);
			if (r.requestDigest == null || r.requestDigest.length == 0)
				throw new IllegalStateException("RD requested but no digest in reply");
			/* The library has already compared the digest with its own (SECURITY_ALERT if not). */
			pass(name, "digest alg " + r.rdHashType + " " + hex(r.requestDigest));
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private void checkFilters(String proto)
	{
		if (reference == null) {
			skip(proto + "/resolve-filtered", "no reference values");
			return;
		}
		String type = reference[0].getTypeAsString();
		int index = reference[0].getIndex();
		int wantOfType = 0;
		for (HandleValue v : reference)
			if (v.getTypeAsString().equals(type))
				wantOfType++;
		String name = proto + "/resolve-type-filter";
		try {
			ResolutionRequest req = resolution(opt.handle, new String[] { type }, null);
			prepare(req);
			HandleValue[] vals = expectValues(send(req, proto, server)).getHandleValues();
			for (HandleValue v : vals)
				if (!v.getTypeAsString().equals(type))
					throw new IllegalStateException("asked for type " + type + ", got " + formatValue(v));
			if (vals.length != wantOfType)
				throw new IllegalStateException("asked for type " + type + ": " + vals.length
				                                + " value(s), expected " + wantOfType);
			pass(name, "type " + type + " -> " + vals.length + " value(s)");
		} catch (Throwable t) {
			fail(name, t);
		}
		name = proto + "/resolve-index-filter";
		try {
			ResolutionRequest req = resolution(opt.handle, null, new int[] { index });
			prepare(req);
			HandleValue[] vals = expectValues(send(req, proto, server)).getHandleValues();
			if (vals.length != 1 || vals[0].getIndex() != index)
				throw new IllegalStateException("asked for index " + index + ", got " + vals.length
				                                + " value(s)");
			pass(name, "index " + index + " -> " + formatValue(vals[0]));
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/** A request over 492 bytes: several UDP datagrams, which the server must reassemble. */
	private void checkLargeRequest(String proto)
	{
		String name = proto + "/resolve-large-request";
		if (reference == null) {
			skip(name, "no reference values");
			return;
		}
		String type = reference[0].getTypeAsString();
		int wantOfType = 0;
		for (HandleValue v : reference)
			if (v.getTypeAsString().equals(type))
				wantOfType++;
		try {
			String[] types = new String[41];
			types[0] = type;
			for (int i = 1; i < types.length; i++)
				types[i] = String.format(Locale.ROOT, "INTEROP_NO_SUCH_TYPE_%04d", i);
			ResolutionRequest req = resolution(opt.handle, types, null);
			prepare(req);
			int size = req.getEncodedMessage().length;
			HandleValue[] vals = expectValues(send(req, proto, server)).getHandleValues();
			if (vals.length != wantOfType)
				throw new IllegalStateException(size + "-byte request for type " + type + ": "
				                                + vals.length + " value(s), expected " + wantOfType);
			pass(name, size + "-byte request -> " + vals.length + " value(s) of type " + type);
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/** A slash-less name X is 0.NA/X (the prefix handle), as Handle.Net and IDIS clients expect. */
	private void checkSlashless(String proto)
	{
		String prefix = opt.handle.substring(0, opt.handle.indexOf('/'));
		String name = proto + "/resolve-slashless-prefix";
		if (prefix.startsWith("0.")) {
			skip(name, "handle is itself under 0.*");
			return;
		}
		try {
			ResolutionRequest req = resolution(prefix, null, null);
			prepare(req);
			HandleValue[] vals = expectValues(send(req, proto, server)).getHandleValues();
			boolean hasSite = false;
			List<String> seen = new ArrayList<>();
			for (HandleValue v : vals) {
				seen.add(v.getIndex() + ":" + v.getTypeAsString());
				if (v.getTypeAsString().startsWith("HS_SITE") || v.getTypeAsString().startsWith("HS_SERV"))
					hasSite = true;
			}
			if (!hasSite)
				throw new IllegalStateException(prefix + ": no HS_SITE / HS_SERV value among " + seen
				                                + " (a client cannot locate the prefix's service)");
			pass(name, prefix + " -> " + vals.length + " value(s)");
			printValues(vals);
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private void checkMissing(String proto)
	{
		String name = proto + "/resolve-missing";
		try {
			ResolutionRequest req = resolution(opt.missing, null, null);
			prepare(req);
			AbstractResponse r = send(req, proto, server);
			if (r.responseCode != AbstractMessage.RC_HANDLE_NOT_FOUND)
				throw new IllegalStateException("expected RC_HANDLE_NOT_FOUND, got " + describeResponse(r));
			pass(name, opt.missing + ": " + describeResponse(r));
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private void checkSiteInfo(String proto)
	{
		String name = proto + "/get-site-info";
		try {
			GenericRequest req = new GenericRequest(Common.BLANK_HANDLE, AbstractMessage.OC_GET_SITE_INFO, null);
			prepare(req);
			AbstractResponse r = send(req, proto, server);
			if (r.responseCode != AbstractMessage.RC_SUCCESS || !(r instanceof GetSiteInfoResponse))
				throw new IllegalStateException("expected site info, got " + r.getClass().getSimpleName()
				                                + " " + describeResponse(r));
			SiteInfo si = ((GetSiteInfoResponse) r).siteInfo;
			if (si == null || si.servers == null || si.servers.length == 0)
				throw new IllegalStateException("site info without servers");
			boolean listed = false;
			for (ServerInfo s : si.servers)
				for (Interface i : s.interfaces)
					if (i.port == opt.port && (i.protocol == Interface.SP_HDL_UDP
					                           || i.protocol == Interface.SP_HDL_TCP))
						listed = true;
			if (!listed)
				throw new IllegalStateException("no server interface on port " + opt.port + ": " + si);
			if (si.serialNumber != r.siteInfoSerial)
				System.out.println("       note: header SiteInfoSerial " + r.siteInfoSerial
				                   + " != HS_SITE serial " + si.serialNumber);
			pass(name, describeResponse(r));
			System.out.println("       " + si.toString().replace("\n", "\n       "));
			for (ServerInfo s : si.servers)
				System.out.println("       server id=" + s.serverId + " addr=" + s.getAddressString()
				                   + " pubkey=" + (s.publicKey == null ? 0 : s.publicKey.length)
				                   + " bytes interfaces=" + Arrays.toString(s.interfaces));
			if (site == null)
				site = si;
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/** Resolve with CT set, against the server key advertised in the site info: the library verifies. */
	private void checkCertified(String proto)
	{
		String name = proto + "/resolve-certified";
		if (site == null) {
			skip(name, "no site info");
			return;
		}
		ServerInfo keyed = null;
		for (ServerInfo s : site.servers)
			if (s.publicKey != null && s.publicKey.length > 0)
				keyed = s;
		if (keyed == null) {
			skip(name, "site info advertises no server public key");
			return;
		}
		try {
			ServerInfo target = server.cloneServerInfo();
			target.publicKey = keyed.publicKey;
			ResolutionRequest req = resolution(opt.handle, null, null);
			prepare(req);
			req.certify = true;
			resolver.setCheckSignatures(true);
			AbstractResponse r = send(req, proto, target);
			expectValues(r);
			if (r.signature == null || r.signature.length == 0)
				throw new IllegalStateException("CT requested but reply unsigned");
			pass(name, "signature " + r.signature.length + " bytes verified by the library");
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/**
	 * The library's global resolution path with our node standing in for the GHR: the client first
	 * resolves 0.NA/PREFIX asking only for the service types (HS_SITE, HS_SERV, ...), then resolves
	 * the handle at the sites it found.
	 */
	private void checkGlobalPath()
	{
		String name = "resolver/resolveHandle-via-emulated-ghr";
		if (site == null) {
			skip(name, "no site info");
			return;
		}
		try {
			Configuration cfg = Configuration.defaultConfiguration();
			cfg.setGlobalSites(new SiteInfo[] { new SiteInfo(site) });
			HandleResolver fresh = new HandleResolver();
			fresh.traceMessages = opt.trace;
			fresh.setTcpTimeout(opt.timeoutMs);
			fresh.setUdpRetryScheme(new int[] { opt.timeoutMs });
			fresh.setConfiguration(cfg);
			HandleValue[] vals = fresh.resolveHandle(opt.handle);
			if (vals == null || vals.length == 0)
				throw new IllegalStateException("no values");
			pass(name, opt.handle + " (prefix record looked up at our node): " + vals.length
			           + " value(s)");
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/** The library's normal resolution path (site selection, hashing, protocol fallback). */
	private void checkResolverPath()
	{
		String name = "resolver/resolveHandle";
		if (site == null) {
			skip(name, "no site info");
			return;
		}
		try {
			String prefix = opt.handle.substring(0, opt.handle.indexOf('/'));
			Configuration cfg = Configuration.defaultConfiguration();
			cfg.setLocalSites("0.NA/" + prefix, new SiteInfo[] { site });
			resolver.setConfiguration(cfg);
			HandleValue[] vals = resolver.resolveHandle(opt.handle);
			if (vals == null || vals.length == 0)
				throw new IllegalStateException("no values");
			if (reference != null && vals.length != reference.length)
				throw new IllegalStateException(vals.length + " value(s), direct resolution gave "
				                                + reference.length);
			pass(name, opt.handle + " via local site for 0.NA/" + prefix + ": " + vals.length
			           + " value(s)");
			printValues(vals);
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private static byte[] addressBytes(InetAddress a)
	{
		byte[] raw = a.getAddress();
		if (raw.length == 16)
			return raw;
		byte[] mapped = new byte[16];
		mapped[10] = (byte) 0xff;
		mapped[11] = (byte) 0xff;
		System.arraycopy(raw, 0, mapped, 12, 4);
		return mapped;
	}

	/** Keep the library's configuration away from the user's ~/.handle and from the network. */
	private static void isolateConfiguration() throws IOException
	{
		File dir = Files.createTempDirectory("hdl-interop-").toFile();
		dir.deleteOnExit();
		File cfg = new File(dir, ".handle");
		if (!cfg.mkdirs())
			throw new IOException("cannot create " + cfg);
		try (FileOutputStream out = new FileOutputStream(new File(cfg, "config.dct"))) {
			out.write(("{\n\"auto_update_root_info\" = \"no\"\n}\n").getBytes(StandardCharsets.UTF_8));
		}
		System.setProperty("user.home", dir.getPath());
		System.setProperty("net.handle.configDir", cfg.getPath());
	}

	private int runNet(NetOptions o) throws Exception
	{
		opt = o;
		if (opt.port <= 0 || opt.handle == null || opt.handle.indexOf('/') <= 0)
			return usage("net needs --port and --handle PREFIX/SUFFIX");
		if (opt.missing == null)
			opt.missing = opt.handle.substring(0, opt.handle.indexOf('/') + 1) + "interop-check-absent-"
			              + Long.toHexString(System.nanoTime());
		isolateConfiguration();
		System.out.println("client: hdllib protocol " + Common.MAJOR_VERSION + "." + Common.MINOR_VERSION
		                   + " (compat " + Common.COMPATIBILITY_MAJOR_VERSION + "."
		                   + Common.COMPATIBILITY_MINOR_VERSION + "), requests sent as " + opt.major + "."
		                   + opt.minor);

		resolver = new HandleResolver();
		resolver.traceMessages = opt.trace;
		resolver.setTcpTimeout(opt.timeoutMs);
		resolver.setUdpRetryScheme(new int[] { opt.timeoutMs });

		server = new ServerInfo();
		server.serverId = 1;
		server.ipAddress = addressBytes(InetAddress.getByName(opt.host));
		server.publicKey = new byte[0];
		List<Interface> list = new ArrayList<>();
		for (String p : opt.protos) {
			int port = p.equals("http") ? opt.httpPort : opt.port;
			if (port <= 0)
				continue;
			Interface i = new Interface(Interface.ST_QUERY, protocolCode(p), port);
			ifaces.put(p, i);
			list.add(i);
		}
		server.interfaces = list.toArray(new Interface[0]);

		for (String p : opt.protos) {
			if (!ifaces.containsKey(p)) {
				skip(p + "/*", "no port given for " + p);
				continue;
			}
			checkResolve(p);
			checkDigest(p);
			checkFilters(p);
			checkLargeRequest(p);
			checkSlashless(p);
			checkMissing(p);
			checkSiteInfo(p);
		}
		if (opt.certify) {
			for (String p : opt.protos)
				if (ifaces.containsKey(p))
					checkCertified(p);
		}
		for (String p : opt.protos)
			if (ifaces.containsKey(p))
				checkAdminWithoutCredentials(p);
		if (opt.resolver) {
			checkGlobalPath();
			checkResolverPath();
		}
		return summary();
	}

	/**
	 * Admin requests without credentials must not change anything: the server may challenge
	 * (RC 402, the reply hdllib then answers), refuse, or say it does not support the operation.
	 * Afterwards the handle must still resolve with all its values.
	 */
	private void checkAdminWithoutCredentials(String proto)
	{
		String name = proto + "/admin-without-credentials";
		try {
			AbstractRequest[] reqs = {
				new AddValueRequest(Util.encodeString(opt.handle),
				                    new HandleValue(4242, Util.encodeString("INTEROP_PROBE"),
				                                    Util.encodeString("must not be stored")),
				                    null),
				new DeleteHandleRequest(Util.encodeString(opt.handle), null),
			};
			StringBuilder got = new StringBuilder();
			for (AbstractRequest req : reqs) {
				prepare(req);
				AbstractResponse r = send(req, proto, server);
				if (r.responseCode == AbstractMessage.RC_SUCCESS)
					throw new IllegalStateException("opCode " + req.opCode
					                                + " without credentials succeeded: " + describeResponse(r));
				if (r.responseCode == AbstractMessage.RC_AUTHENTICATION_NEEDED) {
					if (!(r instanceof ChallengeResponse) || ((ChallengeResponse) r).nonce == null
					    || ((ChallengeResponse) r).nonce.length == 0)
						throw new IllegalStateException("RC 402 without a usable nonce: " + r);
				}
				got.append(got.length() == 0 ? "" : "; ").append("opCode ").append(req.opCode)
				   .append(" -> ").append(rcName(r.responseCode));
			}
			ResolutionRequest again = resolution(opt.handle, null, null);
			prepare(again);
			HandleValue[] vals = expectValues(send(again, proto, server)).getHandleValues();
			if (reference != null && vals.length != reference.length)
				throw new IllegalStateException("handle changed: " + vals.length + " value(s), had "
				                                + reference.length);
			pass(name, got.toString() + "; handle unchanged");
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	/* ---------------------------------------------------------------- offline decoding */

	/** Accepts plain hex (whitespace and #-comments ignored) or `xxd`/`xxd -g1` dumps. */
	static byte[] readHex(File f) throws IOException
	{
		StringBuilder digits = new StringBuilder();
		for (String line : Files.readAllLines(f.toPath(), StandardCharsets.UTF_8)) {
			int hash = line.indexOf('#');
			if (hash >= 0)
				line = line.substring(0, hash);
			if (line.matches("^\\s*[0-9a-fA-F]{4,}:\\s.*")) {
				/* xxd: drop the offset, keep the hex columns, stop at the two-space gap before ASCII */
				String rest = line.substring(line.indexOf(':') + 1);
				if (rest.startsWith(" "))
					rest = rest.substring(1);
				int gap = rest.indexOf("  ");
				if (gap >= 0)
					rest = rest.substring(0, gap);
				line = rest;
			}
			for (char c : line.toCharArray()) {
				if (Character.digit(c, 16) >= 0)
					digits.append(c);
				else if (!Character.isWhitespace(c))
					throw new IOException(f + ": not a hex digit: '" + c + "'");
			}
		}
		if (digits.length() % 2 != 0)
			throw new IOException(f + ": odd number of hex digits");
		byte[] out = new byte[digits.length() / 2];
		for (int i = 0; i < out.length; i++)
			out[i] = (byte) Integer.parseInt(digits.substring(2 * i, 2 * i + 2), 16);
		return out;
	}

	private static int be32(byte[] b, int off)
	{
		return ((b[off] & 0xff) << 24) | ((b[off + 1] & 0xff) << 16) | ((b[off + 2] & 0xff) << 8)
		       | (b[off + 3] & 0xff);
	}

	private void decodeOne(File f, boolean forceNoEnvelope)
	{
		String name = "decode " + f.getName();
		try {
			byte[] buf = readHex(f);
			MessageEnvelope env = new MessageEnvelope();
			int off = 0;
			boolean hasEnvelope = !forceNoEnvelope && buf.length >= ENVELOPE_LEN
			                      && be32(buf, 16) == buf.length - ENVELOPE_LEN;
			if (hasEnvelope) {
				Encoder.decodeEnvelope(buf, env);
				off = ENVELOPE_LEN;
			} else {
				env.protocolMajorVersion = Common.MAJOR_VERSION;
				env.protocolMinorVersion = Common.MINOR_VERSION;
				env.messageLength = buf.length;
			}
			AbstractMessage m = Encoder.decodeMessage(buf, off, env);
			StringBuilder d = new StringBuilder();
			d.append(m.getClass().getSimpleName()).append(hasEnvelope ? " (envelope " + env + ")" : " (no envelope)");
			d.append(" opCode=").append(m.opCode).append(" rc=").append(rcName(m.responseCode));
			pass(name, d.toString());
			System.out.println("       " + m);
			if (m instanceof ResolutionResponse)
				printValues(((ResolutionResponse) m).getHandleValues());
			else if (m instanceof GetSiteInfoResponse)
				System.out.println("       " + ((GetSiteInfoResponse) m).siteInfo);
			else if (m instanceof ErrorResponse)
				System.out.println("       message=\"" + str(((ErrorResponse) m).message) + "\"");
			if (m.signature != null && m.signature.length > 0)
				System.out.println("       signature " + m.signature.length + " bytes");
		} catch (Throwable t) {
			fail(name, t);
		}
	}

	private int runDecode(List<String> args)
	{
		boolean noEnvelope = false;
		List<File> files = new ArrayList<>();
		for (String a : args) {
			if (a.equals("--no-envelope"))
				noEnvelope = true;
			else
				files.add(new File(a));
		}
		if (files.isEmpty())
			return usage("decode needs at least one file");
		for (File f : files)
			decodeOne(f, noEnvelope);
		return summary();
	}

	/* ---------------------------------------------------------------- main */

	private int summary()
	{
		System.out.println(String.format(Locale.ROOT, "summary: %d passed, %d failed, %d skipped",
		                                 passed, failed, skipped));
		return failed == 0 ? 0 : 1;
	}

	private static int usage(String why)
	{
		System.err.println("HdlInteropCheck: " + why);
		System.err.println("usage: HdlInteropCheck net --port P --handle PFX/SFX [--host H] [--http-port H]\n"
		                   + "         [--missing PFX/X] [--protos udp,tcp,http] [--version M.m]\n"
		                   + "         [--timeout-ms N] [--no-resolver] [--no-certify] [--trace]\n"
		                   + "       HdlInteropCheck decode [--no-envelope] FILE...");
		return 2;
	}

	private static NetOptions parseNet(List<String> a)
	{
		NetOptions o = new NetOptions();
		for (int i = 0; i < a.size(); i++) {
			String k = a.get(i);
			boolean hasArg = i + 1 < a.size();
			switch (k) {
			case "--no-resolver": o.resolver = false; continue;
			case "--no-certify": o.certify = false; continue;
			case "--trace": o.trace = true; continue;
			default: break;
			}
			if (!hasArg)
				throw new IllegalArgumentException("missing argument after " + k);
			String v = a.get(++i);
			switch (k) {
			case "--host": o.host = v; break;
			case "--port": o.port = Integer.parseInt(v); break;
			case "--http-port": o.httpPort = Integer.parseInt(v); break;
			case "--handle": o.handle = v; break;
			case "--missing": o.missing = v; break;
			case "--timeout-ms": o.timeoutMs = Integer.parseInt(v); break;
			case "--protos":
				o.protos = new ArrayList<>(Arrays.asList(v.toLowerCase(Locale.ROOT).split(",")));
				for (String p : o.protos)
					protocolCode(p);
				break;
			case "--version": {
				String[] mm = v.split("\\.");
				if (mm.length != 2)
					throw new IllegalArgumentException("--version wants MAJOR.MINOR");
				o.major = Byte.parseByte(mm[0]);
				o.minor = Byte.parseByte(mm[1]);
				break;
			}
			default:
				throw new IllegalArgumentException("unknown option " + k);
			}
		}
		return o;
	}

	public static void main(String[] argv)
	{
		int rc;
		if (argv.length == 0) {
			rc = usage("no command");
		} else {
			List<String> rest = new ArrayList<>(Arrays.asList(argv).subList(1, argv.length));
			HdlInteropCheck c = new HdlInteropCheck();
			try {
				switch (argv[0]) {
				case "net": rc = c.runNet(parseNet(rest)); break;
				case "decode": rc = c.runDecode(rest); break;
				default: rc = usage("unknown command " + argv[0]); break;
				}
			} catch (IllegalArgumentException e) {
				rc = usage(e.getMessage());
			} catch (Throwable t) {
				System.out.println("FAIL setup: " + describe(t));
				rc = 1;
			}
		}
		System.out.flush();
		/* hdllib may leave non-daemon threads behind; do not wait for them. */
		System.exit(rc);
	}
}
