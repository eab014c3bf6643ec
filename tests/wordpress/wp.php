<?php
/**
 * The few WordPress and WooCommerce functions and classes the Keepwell plugin calls, small enough
 * to run it under the PHP command line: hooks run as WordPress runs them (accepted argument
 * counts included), options come from the scenario, objects keep their meta in memory and
 * customers persist it on save().
 */

define( 'ABSPATH', __DIR__ . '/' );

$GLOBALS['kw'] = array(
	'hooks'        => array(),
	'options'      => array(),
	'users'        => array(),
	'fields'       => array(),
	'block_fields' => array(),
	'user'         => 0,
	'subscribers'  => array(),
	'activation'   => array(),
	'actions'      => array(),
);

function kw_hook( $hook, $callback, $priority, $accepted_args ) {
	$GLOBALS['kw']['hooks'][ $hook ][ $priority ][] = array( $callback, $accepted_args );
	ksort( $GLOBALS['kw']['hooks'][ $hook ] );
	return true;
}

function add_action( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	return kw_hook( $hook, $callback, $priority, $accepted_args );
}

function add_filter( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	return kw_hook( $hook, $callback, $priority, $accepted_args );
}

function kw_callbacks( $hook ) {
	$out = array();
	foreach ( isset( $GLOBALS['kw']['hooks'][ $hook ] ) ? $GLOBALS['kw']['hooks'][ $hook ] : array() as $callbacks ) {
		foreach ( $callbacks as $callback ) {
			$out[] = $callback;
		}
	}
	return $out;
}

function do_action( $hook, ...$args ) {
	foreach ( kw_callbacks( $hook ) as list( $callback, $accepted ) ) {
		call_user_func_array( $callback, array_slice( $args, 0, $accepted ) );
	}
}

function apply_filters( $hook, $value, ...$args ) {
	foreach ( kw_callbacks( $hook ) as list( $callback, $accepted ) ) {
		$value = call_user_func_array( $callback, array_slice( array_merge( array( $value ), $args ), 0, $accepted ) );
	}
	return $value;
}

function get_option( $name, $default = false ) {
	return array_key_exists( $name, $GLOBALS['kw']['options'] ) ? $GLOBALS['kw']['options'][ $name ] : $default;
}

function update_option( $name, $value, $autoload = null ) {
	$GLOBALS['kw']['options'][ $name ] = $value;
	return true;
}

function delete_option( $name ) {
	unset( $GLOBALS['kw']['options'][ $name ] );
	return true;
}

function register_activation_hook( $file, $callback ) {
	$GLOBALS['kw']['activation'][] = $callback;
}

/** Action Scheduler (bundled with WooCommerce): queued here, run by the scenario's run_actions step. */
function as_enqueue_async_action( $hook, $args = array(), $group = '' ) {
	$GLOBALS['kw']['actions'][] = array( $hook, $args, $group );
	return count( $GLOBALS['kw']['actions'] );
}

function plugin_dir_path( $file ) {
	return dirname( $file ) . '/';
}

function __( $text, $domain = 'default' ) {
	return $text;
}

function esc_html( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}

function esc_html__( $text, $domain = 'default' ) {
	return esc_html( $text );
}

function sanitize_text_field( $text ) {
	return trim( preg_replace( '/[\r\n\t ]+/', ' ', strip_tags( (string) $text ) ) );
}

function sanitize_title( $title ) {
	return trim( preg_replace( '/[^a-z0-9_]+/', '-', strtolower( strip_tags( (string) $title ) ) ), '-' );
}

function wp_unslash( $value ) {
	return is_string( $value ) ? stripslashes( $value ) : $value;
}

function rest_sanitize_boolean( $value ) {
	if ( is_string( $value ) && in_array( strtolower( $value ), array( 'false', '0', '' ), true ) ) {
		return false;
	}
	return (bool) $value;
}

function wp_timezone() {
	return new DateTimeZone( get_option( 'timezone_string', 'UTC' ) );
}

function get_current_user_id() {
	return $GLOBALS['kw']['user'];
}

function woocommerce_form_field( $key, $args, $value = null ) {
	$GLOBALS['kw']['fields'][ $key ] = array(
		'args'  => $args,
		'value' => $value,
	);
}

function woocommerce_register_additional_checkout_field( $options ) {
	$GLOBALS['kw']['block_fields'][ $options['id'] ] = $options;
}

function WC() {
	return $GLOBALS['kw']['wc'];
}

class WooCommerce {
	public $customer;
	public $cart;
	public $session;

	public function __construct() {
		$this->cart    = new WC_Cart();
		$this->session = new WC_Session_Handler();
	}
}

/** The visitor's cart: which coupons were applied (WooCommerce itself validates them). */
class WC_Cart {
	public $applied = array();

	public function has_discount( $code ) {
		return in_array( wc_format_coupon_code( $code ), $this->applied, true );
	}

	public function apply_coupon( $code ) {
		$this->applied[] = wc_format_coupon_code( $code );
		return true;
	}
}

class WC_Session_Handler {
	public $cookie = false;

	public function has_session() {
		return $this->cookie;
	}

	public function set_customer_session_cookie( $set ) {
		$this->cookie = (bool) $set;
	}
}

/** wp_safe_redirect() followed by exit: the scenario's step catches this instead of exiting. */
class KW_Redirect extends Exception {
}

function wp_safe_redirect( $location, $status = 302 ) {
	throw new KW_Redirect( $location );
}

function wc_get_cart_url() {
	return 'https://shop.example.co.il/cart/';
}

/** As WooCommerce formats a code: trimmed, entities decoded, lower case (its default filter). */
function wc_format_coupon_code( $value ) {
	$code = html_entity_decode( trim( (string) $value ), ENT_QUOTES, 'UTF-8' );
	return function_exists( 'mb_strtolower' ) ? mb_strtolower( $code, 'UTF-8' ) : strtolower( $code );
}

class WC_Data {
	protected $id = 0;
	protected $meta = array();

	public function get_id() {
		return $this->id;
	}

	public function get_meta( $key ) {
		return isset( $this->meta[ $key ] ) ? $this->meta[ $key ] : '';
	}

	public function update_meta_data( $key, $value ) {
		$this->meta[ $key ] = $value;
	}

	/** The meta as the REST API lists it. */
	public function meta_data() {
		$out = array();
		foreach ( $this->meta as $key => $value ) {
			$out[] = array(
				'id'    => count( $out ) + 1,
				'key'   => $key,
				'value' => $value,
			);
		}
		return $out;
	}
}

class WC_Order extends WC_Data {
	private $customer_id;

	public function __construct( $id, $customer_id ) {
		$this->id          = $id;
		$this->customer_id = $customer_id;
	}

	public function get_customer_id() {
		return $this->customer_id;
	}
}

class WC_Customer extends WC_Data {
	public function __construct( $id = 0 ) {
		$this->id   = (int) $id;
		$this->meta = isset( $GLOBALS['kw']['users'][ $this->id ] ) ? $GLOBALS['kw']['users'][ $this->id ] : array();
	}

	public function save() {
		$GLOBALS['kw']['users'][ $this->id ] = $this->meta;
		return $this->id;
	}
}

class WC_Checkout {
	public function get_value( $key ) {
		return isset( $_POST[ $key ] ) ? $_POST[ $key ] : null; // phpcs:ignore
	}
}

class WP_HTTP_Response {
	public $headers = array();

	public function header( $name, $value ) {
		$this->headers[ $name ] = $value;
	}
}

class WP_REST_Response extends WP_HTTP_Response {
}

class WP_REST_Request {
	private $params;

	public function __construct( $params ) {
		$this->params = $params;
	}

	public function get_param( $key ) {
		return isset( $this->params[ $key ] ) ? $this->params[ $key ] : null;
	}
}

if ( ! function_exists( 'mb_substr' ) ) {
	/** WordPress's own fallback when PHP lacks mbstring (wp-includes/compat.php), for UTF-8. */
	function mb_substr( $text, $start, $length = null ) {
		$chars = preg_split( '//u', (string) $text, -1, PREG_SPLIT_NO_EMPTY );
		return implode( '', array_slice( $chars, $start, $length ) );
	}
}
